// Fast Hadamard transform of one N-point group per beat (N = 2**LOG2N; 128 for GHT).
//
// LOG2N registered radix-2 butterfly stages give the natural-order Sylvester product y = H x exactly, in
// integers: each stage grows the word by one bit, so outputs are WIDTH + LOG2N bits wide. The 1/sqrt(N)
// of the orthogonal transform is not applied here: x W^T = (x H)(W H)^T / N, so the factor 1/N is folded
// into the offline weight transform, and the absmax quantizer that follows is scale-invariant anyway.
// Initiation interval 1, latency LOG2N cycles; the whole pipeline stalls while the output is held.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fht #(
    parameter LOG2N = 7,
    parameter WIDTH = 16
) (
    input  wire                                clk,
    input  wire                                rst,

    input  wire [(1<<LOG2N)*WIDTH-1:0]         s_data,
    input  wire                                s_valid,
    output wire                                s_ready,

    output wire [(1<<LOG2N)*(WIDTH+LOG2N)-1:0] m_data,
    output wire                                m_valid,
    input  wire                                m_ready
);

localparam N = 1 << LOG2N;
localparam OW = WIDTH + LOG2N;

wire advance = !m_valid || m_ready;
assign s_ready = advance;

reg [LOG2N-1:0] valid_pipe;
assign m_valid = valid_pipe[LOG2N-1];

always @(posedge clk) begin
    if (advance) begin
        valid_pipe <= {valid_pipe[LOG2N-2:0], s_valid};
    end
    if (rst) begin
        valid_pipe <= {LOG2N{1'b0}};
    end
end

wire [N*OW-1:0] extended;

genvar lane;
generate
    for (lane = 0; lane < N; lane = lane + 1) begin : sign_extend
        assign extended[lane*OW +: OW] = {{LOG2N{s_data[lane*WIDTH + WIDTH-1]}}, s_data[lane*WIDTH +: WIDTH]};
    end
endgenerate

genvar s;
generate
    for (s = 0; s < LOG2N; s = s + 1) begin : stage
        wire [N*OW-1:0] previous;
        reg  [N*OW-1:0] data;
        if (s == 0) begin : from_input
            assign previous = extended;
        end else begin : from_stage
            assign previous = stage[s-1].data;
        end
        // lane i pairs with i ^ 2**s: the lower lane keeps the sum, the upper one the difference
        integer i;
        always @(posedge clk) begin
            if (advance) begin
                for (i = 0; i < N; i = i + 1) begin
                    if ((i & (1 << s)) == 0)
                        data[i*OW +: OW] <= previous[i*OW +: OW] + previous[(i ^ (1 << s))*OW +: OW];
                    else
                        data[i*OW +: OW] <= previous[(i ^ (1 << s))*OW +: OW] - previous[i*OW +: OW];
                end
            end
        end
    end
endgenerate

assign m_data = stage[LOG2N-1].data;

endmodule

`resetall
