// First-level pipeline (paper Sec. IV-D, Fig. 8c): GHT -> FP4 quantizer -> FP4 GEMM, group by group, for one
// tile of a linear layer: ROWS tokens of C = GROUPS x 2**LOG2N channels times COLS output channels.
//
// Each activation beat is group g of ROWS tokens (signed WIDTH-bit integers). ght transforms it (exact, WIDTH +
// LOG2N bits), one fp4_quantizer per row turns it into codes and the group maximum, and fp4_gemm multiplies it
// with the weight beat of the same group (COLS x 2**LOG2N E2M1 codes and their scales, streamed from weight
// memory) while group g + 1 is already in the transform: because GHT works within a group, nothing waits for
// the whole tensor. Result: ROWS x COLS exact integers, unit (input unit) x (weight-scale unit) / 24 (fp4_gemm),
// with the GHT's 1/2**LOG2N folded into the weight scales offline.
//
// SEQUENTIAL = 1 builds the order a full Hadamard transform forces (Fig. 8b): a store-and-forward frame FIFO after
// the transform and after the quantizer, so each step starts only once the previous one has finished the whole
// tile. Same results, for the cycle comparison.
// Latency LOG2N + 4 + 5 from the last group; SEQUENTIAL adds 2 GROUPS + 2 cycles per tile.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module linear_tile #(
    parameter ROWS = 2,
    parameter COLS = 2,
    parameter LOG2N = 7,
    parameter WIDTH = 16,
    parameter GROUPS = 15,
    parameter WEIGHT_SCALE_WIDTH = 16,
    parameter OUT_WIDTH = 64,
    parameter TIE_UP = 0,
    parameter INDEX_BITS = 8,
    parameter SEQUENTIAL = 0
) (
    input  wire                                 clk,
    input  wire                                 rst,

    input  wire [ROWS*(1<<LOG2N)*WIDTH-1:0]     s_data,
    input  wire                                 s_valid,
    output wire                                 s_ready,

    input  wire [COLS*(1<<LOG2N)*4-1:0]         s_weight_codes,
    input  wire [COLS*WEIGHT_SCALE_WIDTH-1:0]   s_weight_scale,
    input  wire                                 s_weight_valid,
    output wire                                 s_weight_ready,

    output wire [ROWS*COLS*OUT_WIDTH-1:0]       m_result,
    output wire                                 m_valid,
    input  wire                                 m_ready
);

localparam N = 1 << LOG2N;
localparam TRANSFORMED_WIDTH = WIDTH + LOG2N;
localparam FRAME_DEPTH = GROUPS > 2 ? 1 << $clog2(GROUPS) : 2;

// GHT
wire [ROWS*N*TRANSFORMED_WIDTH-1:0] transformed;
wire transformed_last, transformed_valid, transformed_ready;

ght #(
    .LOG2N(LOG2N),
    .WIDTH(WIDTH),
    .ROWS(ROWS),
    .GROUPS(GROUPS)
) transform (
    .clk(clk),
    .rst(rst),
    .s_data(s_data),
    .s_valid(s_valid),
    .s_ready(s_ready),
    .m_data(transformed),
    .m_last(transformed_last),
    .m_valid(transformed_valid),
    .m_ready(transformed_ready)
);

wire [ROWS*N*TRANSFORMED_WIDTH-1:0] to_quantize;
wire to_quantize_last, to_quantize_valid, to_quantize_ready;

wire [ROWS*N*4-1:0] codes;
wire [ROWS*TRANSFORMED_WIDTH-1:0] maxima;
wire codes_last, codes_valid, codes_ready;

wire [ROWS*N*4-1:0] to_multiply_codes;
wire [ROWS*TRANSFORMED_WIDTH-1:0] to_multiply_maxima;
wire to_multiply_last, to_multiply_valid, to_multiply_ready;

generate
    if (SEQUENTIAL != 0) begin : sequential
        stream_frame_fifo #(
            .DATA_WIDTH(ROWS*N*TRANSFORMED_WIDTH),
            .DEPTH(FRAME_DEPTH)
        ) transformed_tile (
            .clk(clk),
            .rst(rst),
            .s_data(transformed),
            .s_last(transformed_last),
            .s_valid(transformed_valid),
            .s_ready(transformed_ready),
            .m_data(to_quantize),
            .m_last(to_quantize_last),
            .m_valid(to_quantize_valid),
            .m_ready(to_quantize_ready)
        );
        stream_frame_fifo #(
            .DATA_WIDTH(ROWS*(N*4+TRANSFORMED_WIDTH)),
            .DEPTH(FRAME_DEPTH)
        ) quantized_tile (
            .clk(clk),
            .rst(rst),
            .s_data({maxima, codes}),
            .s_last(codes_last),
            .s_valid(codes_valid),
            .s_ready(codes_ready),
            .m_data({to_multiply_maxima, to_multiply_codes}),
            .m_last(to_multiply_last),
            .m_valid(to_multiply_valid),
            .m_ready(to_multiply_ready)
        );
    end else begin : pipelined
        assign to_quantize = transformed;
        assign to_quantize_last = transformed_last;
        assign to_quantize_valid = transformed_valid;
        assign transformed_ready = to_quantize_ready;
        assign to_multiply_codes = codes;
        assign to_multiply_maxima = maxima;
        assign to_multiply_last = codes_last;
        assign to_multiply_valid = codes_valid;
        assign codes_ready = to_multiply_ready;
    end
endgenerate

// One quantizer per row, in lockstep (identical pipelines fed identically).
wire [ROWS-1:0] row_ready, row_last, row_valid;
wire [ROWS*TRANSFORMED_WIDTH-1:0] unused_negative_maxima;  // E2M1: one scale per group
assign to_quantize_ready = &row_ready;
assign codes_last = &row_last;
assign codes_valid = &row_valid;

genvar row;
generate
    for (row = 0; row < ROWS; row = row + 1) begin : rows
        fp4_quantizer #(
            .GROUP(N),
            .WIDTH(TRANSFORMED_WIDTH),
            .DUAL(0),
            .TIE_UP(TIE_UP),
            .INDEX_BITS(INDEX_BITS)
        ) quantizer (
            .clk(clk),
            .rst(rst),
            .s_data(to_quantize[row*N*TRANSFORMED_WIDTH +: N*TRANSFORMED_WIDTH]),
            .s_last(to_quantize_last),
            .s_valid(to_quantize_valid),
            .s_ready(row_ready[row]),
            .m_codes(codes[row*N*4 +: N*4]),
            .m_max(maxima[row*TRANSFORMED_WIDTH +: TRANSFORMED_WIDTH]),
            .m_max_negative(unused_negative_maxima[row*TRANSFORMED_WIDTH +: TRANSFORMED_WIDTH]),
            .m_last(row_last[row]),
            .m_valid(row_valid[row]),
            .m_ready(codes_ready)
        );
    end
endgenerate

fp4_gemm #(
    .ROWS(ROWS),
    .COLS(COLS),
    .GROUP(N),
    .LANES(N),
    .DUAL(0),
    .SCALE_WIDTH(TRANSFORMED_WIDTH),
    .WEIGHT_SCALE_WIDTH(WEIGHT_SCALE_WIDTH),
    .OUT_WIDTH(OUT_WIDTH)
) multiply (
    .clk(clk),
    .rst(rst),
    .s_act_codes(to_multiply_codes),
    .s_act_max(to_multiply_maxima),
    .s_act_max_negative({(ROWS*TRANSFORMED_WIDTH){1'b0}}),
    .s_act_last(to_multiply_last),
    .s_act_valid(to_multiply_valid),
    .s_act_ready(to_multiply_ready),
    .s_weight_codes(s_weight_codes),
    .s_weight_scale(s_weight_scale),
    .s_weight_valid(s_weight_valid),
    .s_weight_ready(s_weight_ready),
    .m_result(m_result),
    .m_valid(m_valid),
    .m_ready(m_ready)
);

endmodule

`resetall
