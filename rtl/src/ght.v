// Group-wise Hadamard transform unit (paper Sec. IV-B, GHTU of Fig. 7c): tokens of C = GROUPS x 2**LOG2N channels.
//
// GHT applies one 2**LOG2N-point Hadamard matrix to every group of consecutive channels, so a token is GROUPS beats
// of one group each through the streaming FHT (fht), with no buffering: the first-level pipeline can quantize and
// multiply group g while group g + 1 is transformed. ROWS tokens travel side by side (one fht per row, in
// lockstep), so one beat carries group g of ROWS tokens; m_last marks each token's last group (for a tile: the end
// of the reduction dimension). Unnormalised, as fht: the 1/sqrt(N) goes into the offline weights.
// Latency LOG2N, initiation interval 1.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module ght #(
    parameter LOG2N = 7,
    parameter WIDTH = 16,
    parameter ROWS = 1,
    parameter GROUPS = 15
) (
    input  wire                                     clk,
    input  wire                                     rst,

    input  wire [ROWS*(1<<LOG2N)*WIDTH-1:0]         s_data,
    input  wire                                     s_valid,
    output wire                                     s_ready,

    output wire [ROWS*(1<<LOG2N)*(WIDTH+LOG2N)-1:0] m_data,
    output wire                                     m_last,
    output wire                                     m_valid,
    input  wire                                     m_ready
);

localparam N = 1 << LOG2N;
localparam GROUP_WIDTH = GROUPS > 1 ? $clog2(GROUPS) : 1;
localparam integer LAST_GROUP = GROUPS - 1;

initial begin
    if (LOG2N < 2 || ROWS < 1 || GROUPS < 1) begin
        $error("Error: ght needs LOG2N >= 2, ROWS >= 1 and GROUPS >= 1 (instance %m)");
        $finish;
    end
end

wire [ROWS-1:0] row_ready, row_valid;
// Identical pipelines fed identically stay in lockstep: every row's handshake is the same.
assign s_ready = &row_ready;
assign m_valid = &row_valid;

genvar row;
generate
    for (row = 0; row < ROWS; row = row + 1) begin : rows
        fht #(
            .LOG2N(LOG2N),
            .WIDTH(WIDTH)
        ) transform (
            .clk(clk),
            .rst(rst),
            .s_data(s_data[row*N*WIDTH +: N*WIDTH]),
            .s_valid(s_valid),
            .s_ready(row_ready[row]),
            .m_data(m_data[row*N*(WIDTH+LOG2N) +: N*(WIDTH+LOG2N)]),
            .m_valid(row_valid[row]),
            .m_ready(m_ready)
        );
    end
endgenerate

// Which group of the token enters now; its last-group flag follows the data through fht's LOG2N stages, which
// move exactly when fht accepts input (s_ready is fht's pipeline enable).
reg [GROUP_WIDTH-1:0] group;
wire last_group = group == LAST_GROUP[GROUP_WIDTH-1:0];
reg [LOG2N-1:0] last_pipe;
assign m_last = last_pipe[LOG2N-1];

always @(posedge clk) begin
    if (s_valid && s_ready) begin
        group <= last_group ? {GROUP_WIDTH{1'b0}} : group + 1'b1;
    end
    if (s_ready) begin
        last_pipe <= {last_pipe[LOG2N-2:0], last_group};
    end
    if (rst) begin
        group <= {GROUP_WIDTH{1'b0}};
    end
end

endmodule

`resetall
