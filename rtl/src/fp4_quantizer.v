// FP4 quantizer (paper Fig. 7d / 7g): the scale pass (fp4_scale_pass), then the encode pass: each value scaled to
// t = round(x * reciprocal / 2**(FRACTION_BITS + exponent)) = round(R x / m) in [-12, 12] (DFQ negatives:
// [-7, 0], with their own scale), then the code table (fp4_encoder).
//
// One group of GROUP signed WIDTH-bit integers per beat in; GROUP 4-bit codes and the group's scale out. The
// scale is the group maximum m itself (DFQ: m_pos and m_neg), exact, in the input's units: a code of value v
// stands for v * m / 6 (E2M1, and DFQ positives) or v * m_neg / 3.5 (DFQ negatives); the GEMM unit applies those
// constants. Rounding is half up (toward +inf) at t, then the table's tie rule (TIE_UP) between grid values.
// Latency 4 (scale pass 2, scaling 1, encoder 1), initiation interval 1.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fp4_quantizer #(
    parameter GROUP = 128,
    parameter WIDTH = 23,
    parameter DUAL = 0,
    parameter TIE_UP = 0,
    parameter INDEX_BITS = 8
) (
    input  wire                   clk,
    input  wire                   rst,

    input  wire [GROUP*WIDTH-1:0] s_data,
    input  wire                   s_last,
    input  wire                   s_valid,
    output wire                   s_ready,

    output wire [GROUP*4-1:0]     m_codes,
    output reg  [WIDTH-1:0]       m_max,           // E2M1: max |x|; DFQ: max x over x > 0
    output reg  [WIDTH-1:0]       m_max_negative,  // DFQ: max -x over x <= 0; E2M1: 0
    output reg                    m_last,
    output wire                   m_valid,
    input  wire                   m_ready
);

localparam FRACTION_BITS = INDEX_BITS + 5;
localparam RECIPROCAL_WIDTH = FRACTION_BITS + 4;
localparam EXPONENT_WIDTH = $clog2(WIDTH);
localparam integer TOP_BIT = WIDTH - 1;
// x << (WIDTH-1-exponent) keeps |x| below 2**WIDTH (since |x| <= m < 2**(exponent+1)): WIDTH + 1 bits signed
localparam PRODUCT_WIDTH = WIDTH + 1 + RECIPROCAL_WIDTH + 1;
localparam ROUND_SHIFT = FRACTION_BITS + WIDTH - 1;

wire [GROUP*WIDTH-1:0] scaled_data;
wire scaled_last, scaled_valid, scaled_ready;
wire [WIDTH-1:0] positive_max, negative_max;
wire [RECIPROCAL_WIDTH-1:0] positive_reciprocal, negative_reciprocal;
wire [EXPONENT_WIDTH-1:0] positive_exponent, negative_exponent;

fp4_scale_pass #(
    .GROUP(GROUP),
    .WIDTH(WIDTH),
    .DUAL(DUAL),
    .INDEX_BITS(INDEX_BITS)
) scale_pass (
    .clk(clk),
    .rst(rst),
    .s_data(s_data),
    .s_last(s_last),
    .s_valid(s_valid),
    .s_ready(s_ready),
    .m_data(scaled_data),
    .m_last(scaled_last),
    .m_max(positive_max),
    .m_reciprocal(positive_reciprocal),
    .m_exponent(positive_exponent),
    .m_max_negative(negative_max),
    .m_reciprocal_negative(negative_reciprocal),
    .m_exponent_negative(negative_exponent),
    .m_valid(scaled_valid),
    .m_ready(scaled_ready)
);

// Encode-pass scaling: one multiplier per lane. The shift before the product is exact (a left shift), so the
// only rounding is the half-up rounding of the product's top bits. Only t's five bits are kept: the bits below
// the rounding point are dropped, those above are sign copies.
/* verilator lint_off UNUSEDSIGNAL */
function automatic [4:0] scale_to_table(
    input signed [WIDTH-1:0] x,
    input [RECIPROCAL_WIDTH-1:0] reciprocal,
    input [EXPONENT_WIDTH-1:0] exponent
);
    reg signed [WIDTH:0] normalised;
    reg signed [PRODUCT_WIDTH-1:0] product;
    reg signed [PRODUCT_WIDTH-1:0] rounded;
    begin
        normalised = $signed({x[WIDTH-1], x}) <<< (TOP_BIT[EXPONENT_WIDTH-1:0] - exponent);
        product = $signed({{(RECIPROCAL_WIDTH+1){normalised[WIDTH]}}, normalised}) * $signed({1'b0, reciprocal});
        rounded = (product + ({{(PRODUCT_WIDTH-1){1'b0}}, 1'b1} <<< (ROUND_SHIFT - 1))) >>> ROUND_SHIFT;
        scale_to_table = rounded[4:0];  // |t| <= 12 by construction of the reciprocal (tested)
    end
endfunction
/* verilator lint_on UNUSEDSIGNAL */

wire encoder_ready;
reg [GROUP*5-1:0] table_input;
reg table_valid, table_last;
reg [WIDTH-1:0] table_max, table_max_negative;

assign scaled_ready = !table_valid || encoder_ready;

wire [GROUP*5-1:0] scaled_to_table;

genvar lane;
generate
    for (lane = 0; lane < GROUP; lane = lane + 1) begin : lanes
        wire signed [WIDTH-1:0] x = scaled_data[lane*WIDTH +: WIDTH];
        // DFQ: x <= 0 takes the negative side's scale (x = 0 gives t = 0 on either side); the scale is chosen
        // before the product, so each lane has one multiplier
        wire negative_side = DUAL != 0 && x <= 0;
        wire [RECIPROCAL_WIDTH-1:0] reciprocal = negative_side ? negative_reciprocal : positive_reciprocal;
        wire [EXPONENT_WIDTH-1:0] exponent = negative_side ? negative_exponent : positive_exponent;
        assign scaled_to_table[lane*5 +: 5] = scale_to_table(x, reciprocal, exponent);
    end
endgenerate

always @(posedge clk) begin
    if (scaled_valid && scaled_ready) begin
        table_input <= scaled_to_table;
        table_last <= scaled_last;
        table_max <= positive_max;
        table_max_negative <= negative_max;
    end
    if (scaled_ready) begin
        table_valid <= scaled_valid;
    end
    if (rst) begin
        table_valid <= 1'b0;
    end
end

fp4_encoder #(
    .LANES(GROUP),
    .DUAL(DUAL),
    .TIE_UP(TIE_UP)
) encoder (
    .clk(clk),
    .rst(rst),
    .s_scaled(table_input),
    .s_valid(table_valid),
    .s_ready(encoder_ready),
    .m_code(m_codes),
    .m_valid(m_valid),
    .m_ready(m_ready)
);

// The scale and last flag ride beside the encoder's register: loaded on the same handshake.
always @(posedge clk) begin
    if (table_valid && encoder_ready) begin
        m_last <= table_last;
        m_max <= table_max;
        m_max_negative <= table_max_negative;
    end
end

endmodule

`resetall
