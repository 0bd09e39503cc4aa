// Store-and-forward FIFO: a frame (the beats up to one with s_last) leaves only once it has fully arrived.
//
// Between the units of a tile this turns the group-by-group pipeline into the sequential order that a full
// (non-group-wise) Hadamard transform forces, where each step needs the whole tensor before the next can start
// (paper Fig. 8b); linear_tile uses it for its SEQUENTIAL variant. As verilog-axis's axis_fifo with FRAME_FIFO:
// the write pointer commits at each frame's last beat and reads stop at the committed pointer. A frame must fit
// in DEPTH beats (a longer one would wait forever); DEPTH is a power of two. Registered output: a committed beat
// leaves one cycle after it can be read.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module stream_frame_fifo #(
    parameter DATA_WIDTH = 8,
    parameter DEPTH = 16
) (
    input  wire                  clk,
    input  wire                  rst,

    input  wire [DATA_WIDTH-1:0] s_data,
    input  wire                  s_last,
    input  wire                  s_valid,
    output wire                  s_ready,

    output reg  [DATA_WIDTH-1:0] m_data,
    output reg                   m_last,
    output reg                   m_valid,
    input  wire                  m_ready
);

localparam ADDRESS_WIDTH = DEPTH > 1 ? $clog2(DEPTH) : 1;

initial begin
    if (DEPTH < 2 || (1 << ADDRESS_WIDTH) != DEPTH) begin
        $error("Error: stream_frame_fifo DEPTH must be a power of two >= 2 (instance %m)");
        $finish;
    end
end

reg [DATA_WIDTH:0] memory [0:DEPTH-1];  // {last, data}
// One extra bit tells a full FIFO from an empty one.
reg [ADDRESS_WIDTH:0] write_pointer, commit_pointer, read_pointer;

wire full = write_pointer == {~read_pointer[ADDRESS_WIDTH], read_pointer[ADDRESS_WIDTH-1:0]};
wire committed = commit_pointer != read_pointer;
wire read = committed && (!m_valid || m_ready);
assign s_ready = !full;

always @(posedge clk) begin
    if (s_valid && s_ready) begin
        memory[write_pointer[ADDRESS_WIDTH-1:0]] <= {s_last, s_data};
        write_pointer <= write_pointer + 1'b1;
        if (s_last) begin
            commit_pointer <= write_pointer + 1'b1;
        end
    end
    if (read) begin
        {m_last, m_data} <= memory[read_pointer[ADDRESS_WIDTH-1:0]];
        read_pointer <= read_pointer + 1'b1;
        m_valid <= 1'b1;
    end else if (m_ready) begin
        m_valid <= 1'b0;
    end
    if (rst) begin
        write_pointer <= {(ADDRESS_WIDTH+1){1'b0}};
        commit_pointer <= {(ADDRESS_WIDTH+1){1'b0}};
        read_pointer <= {(ADDRESS_WIDTH+1){1'b0}};
        m_valid <= 1'b0;
    end
end

endmodule

`resetall
