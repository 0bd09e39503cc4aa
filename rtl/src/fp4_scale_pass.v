// Scale pass of the FP4 quantizer (paper Fig. 7d, top pass): per group, the absolute maximum and its reciprocal.
//
// One group of GROUP signed WIDTH-bit integers per beat (the FHT unit's output, or any fixed-point activation:
// the quantizer is scale-invariant, so the input's binary point does not matter). The group is passed through
// unchanged beside its scale, for the encode pass (fp4_quantizer).
//
// DUAL = 0: m = max |x|, with R = 12 (E2M1 values times 2 reach 12).
// DUAL = 1: DFQ, two scales: m_neg = max -x over x <= 0 with R = 7 (Table I's E1M2 times 2 reaches 7) and
//           m_pos = max x over x > 0 with R = 12.
// Reciprocal by table, no divider: write m = 2**e * f with f in [1, 2) (e = position of the leading one); f is
// rounded to INDEX_BITS fraction bits, index i in 0 .. 2**INDEX_BITS (2**INDEX_BITS + 1 entries), and the ROM holds
// round(R * 2**(FRACTION_BITS + INDEX_BITS) / (2**INDEX_BITS + i)), i.e. R / f in FRACTION_BITS = INDEX_BITS + 5
// fraction bits (12 * 2**13 < 2**17: with a 23-bit input, x * reciprocal fits one 27 x 18 DSP multiplier). The
// encode pass then computes t = round(x * reciprocal / 2**(FRACTION_BITS + e)) = round(R x / m) up to the
// table's error, at most R * 2**-(INDEX_BITS + 1) + 2**-FRACTION_BITS in units of t. m = 0 gives reciprocal 0
// (an all-zero side quantizes to code 0).
// Two registered stages (maxima, then exponent and table look-up); initiation interval 1.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fp4_scale_pass #(
    parameter GROUP = 128,
    parameter WIDTH = 23,
    parameter DUAL = 0,
    parameter INDEX_BITS = 8
) (
    input  wire                                 clk,
    input  wire                                 rst,

    input  wire [GROUP*WIDTH-1:0]               s_data,
    input  wire                                 s_last,
    input  wire                                 s_valid,
    output wire                                 s_ready,

    output wire [GROUP*WIDTH-1:0]               m_data,
    output wire                                 m_last,
    // E2M1: max |x|; DFQ: max x over x > 0. Unsigned, in the input's units.
    output wire [WIDTH-1:0]                     m_max,
    output wire [INDEX_BITS+8:0]                m_reciprocal,
    output wire [$clog2(WIDTH)-1:0]             m_exponent,
    // DFQ only (zero for E2M1): max -x over x <= 0, its reciprocal and exponent.
    output wire [WIDTH-1:0]                     m_max_negative,
    output wire [INDEX_BITS+8:0]                m_reciprocal_negative,
    output wire [$clog2(WIDTH)-1:0]             m_exponent_negative,
    output wire                                 m_valid,
    input  wire                                 m_ready
);

localparam FRACTION_BITS = INDEX_BITS + 5;
localparam RECIPROCAL_WIDTH = FRACTION_BITS + 4;  // R / f <= 12 < 16
localparam EXPONENT_WIDTH = $clog2(WIDTH);
localparam integer TOP_BIT = WIDTH - 1;
localparam LEAVES = 1 << $clog2(GROUP);  // the maximum trees pad the group to a power of two with zeros
localparam ENTRIES = (1 << INDEX_BITS) + 1;

initial begin
    if (GROUP < 1 || WIDTH < 2) begin
        $error("Error: fp4_scale_pass needs GROUP >= 1 and WIDTH >= 2 (instance %m)");
        $finish;
    end
    if (INDEX_BITS < 2 || INDEX_BITS > 10) begin
        // the table is computed in 32-bit integers: 12 * 2**(2 * INDEX_BITS + 7) must stay below 2**31
        $error("Error: fp4_scale_pass needs 2 <= INDEX_BITS <= 10 (instance %m)");
        $finish;
    end
end

// round(R * 2**(FRACTION_BITS + INDEX_BITS) / (2**INDEX_BITS + index)), in integers; only the entry's bits of the
// 32-bit intermediate are kept (the rest are zero by construction)
/* verilator lint_off UNUSEDSIGNAL */
function automatic [RECIPROCAL_WIDTH-1:0] reciprocal_entry(input integer range, input integer index);
    integer twice;  // 2 R / f, rounded down; then halved with rounding
    begin
        twice = (range << (FRACTION_BITS + INDEX_BITS + 1)) / ((1 << INDEX_BITS) + index) + 1;
        reciprocal_entry = twice[RECIPROCAL_WIDTH:1];
    end
endfunction
/* verilator lint_on UNUSEDSIGNAL */

reg [RECIPROCAL_WIDTH-1:0] positive_table [0:ENTRIES-1];  // R = 12 (E2M1)
reg [RECIPROCAL_WIDTH-1:0] negative_table [0:ENTRIES-1];  // R = 7 (E1M2), DFQ only

integer entry;
initial begin
    for (entry = 0; entry < ENTRIES; entry = entry + 1) begin
        positive_table[entry] = reciprocal_entry(12, entry);
        negative_table[entry] = reciprocal_entry(7, entry);
    end
end

wire advance = !m_valid || m_ready;
assign s_ready = advance;

// Stage 1: maxima over the group, as binary trees: level 0 holds the (padded) group's magnitudes, level l + 1 the
// larger of each pair of level l.
localparam LEVELS = $clog2(LEAVES);

genvar leaf, level, node;
generate
    for (level = 0; level <= LEVELS; level = level + 1) begin : levels
        wire [(LEAVES>>level)*WIDTH-1:0] positive;
        wire [(LEAVES>>level)*WIDTH-1:0] negative;
        if (level == 0) begin : magnitudes
            for (leaf = 0; leaf < LEAVES; leaf = leaf + 1) begin : leaves
                if (leaf < GROUP) begin : value
                    wire signed [WIDTH-1:0] x = s_data[leaf*WIDTH +: WIDTH];
                    wire [WIDTH-1:0] negated = -x;  // |x| of the most negative input, 2**(WIDTH-1), fits unsigned
                    if (DUAL != 0) begin : split
                        assign positive[leaf*WIDTH +: WIDTH] = x > 0 ? x : {WIDTH{1'b0}};
                        assign negative[leaf*WIDTH +: WIDTH] = x < 0 ? negated : {WIDTH{1'b0}};
                    end else begin : absolute
                        assign positive[leaf*WIDTH +: WIDTH] = x < 0 ? negated : x;
                        assign negative[leaf*WIDTH +: WIDTH] = {WIDTH{1'b0}};
                    end
                end else begin : padding
                    assign positive[leaf*WIDTH +: WIDTH] = {WIDTH{1'b0}};
                    assign negative[leaf*WIDTH +: WIDTH] = {WIDTH{1'b0}};
                end
            end
        end else begin : pairs
            for (node = 0; node < (LEAVES >> level); node = node + 1) begin : nodes
                wire [WIDTH-1:0] positive_left = levels[level-1].positive[2*node*WIDTH +: WIDTH];
                wire [WIDTH-1:0] positive_right = levels[level-1].positive[(2*node+1)*WIDTH +: WIDTH];
                wire [WIDTH-1:0] negative_left = levels[level-1].negative[2*node*WIDTH +: WIDTH];
                wire [WIDTH-1:0] negative_right = levels[level-1].negative[(2*node+1)*WIDTH +: WIDTH];
                assign positive[node*WIDTH +: WIDTH] = positive_left > positive_right ? positive_left : positive_right;
                assign negative[node*WIDTH +: WIDTH] = negative_left > negative_right ? negative_left : negative_right;
            end
        end
    end
endgenerate

reg [GROUP*WIDTH-1:0] data_1;
reg last_1, valid_1;
reg [WIDTH-1:0] positive_max_1, negative_max_1;

always @(posedge clk) begin
    if (advance) begin
        data_1 <= s_data;
        last_1 <= s_last;
        valid_1 <= s_valid;
        positive_max_1 <= levels[LEVELS].positive;
        negative_max_1 <= levels[LEVELS].negative;
    end
    if (rst) begin
        valid_1 <= 1'b0;
    end
end

// Stage 2: exponent (leading one) and the table index (f rounded to INDEX_BITS fraction bits, half up).
function automatic [EXPONENT_WIDTH-1:0] leading_one(input [WIDTH-1:0] value);
    integer b;
    begin
        leading_one = {EXPONENT_WIDTH{1'b0}};
        for (b = 0; b < WIDTH; b = b + 1) begin
            if (value[b]) leading_one = b[EXPONENT_WIDTH-1:0];
        end
    end
endfunction

// value << (WIDTH - 1 - exponent) puts the leading one at bit WIDTH-1; INDEX_BITS + 1 zero bits below make room
// for the fraction bits and the rounding bit when WIDTH is small.
function automatic [INDEX_BITS:0] table_index(input [WIDTH-1:0] value, input [EXPONENT_WIDTH-1:0] exponent);
    reg [WIDTH+INDEX_BITS:0] normalised;
    reg [INDEX_BITS:0] truncated;
    begin
        normalised = {value, {(INDEX_BITS+1){1'b0}}} << (TOP_BIT[EXPONENT_WIDTH-1:0] - exponent);
        truncated = {1'b0, normalised[WIDTH+INDEX_BITS-1 -: INDEX_BITS]};
        table_index = truncated + {{INDEX_BITS{1'b0}}, normalised[WIDTH-1]};
    end
endfunction

wire [EXPONENT_WIDTH-1:0] positive_exponent = leading_one(positive_max_1);
wire [EXPONENT_WIDTH-1:0] negative_exponent = leading_one(negative_max_1);
wire [INDEX_BITS:0] positive_index = table_index(positive_max_1, positive_exponent);
wire [INDEX_BITS:0] negative_index = table_index(negative_max_1, negative_exponent);

reg [GROUP*WIDTH-1:0] data_2;
reg last_2, valid_2;
reg [WIDTH-1:0] positive_max_2, negative_max_2;
reg [RECIPROCAL_WIDTH-1:0] positive_reciprocal_2, negative_reciprocal_2;
reg [EXPONENT_WIDTH-1:0] positive_exponent_2, negative_exponent_2;

always @(posedge clk) begin
    if (advance) begin
        data_2 <= data_1;
        last_2 <= last_1;
        valid_2 <= valid_1;
        positive_max_2 <= positive_max_1;
        negative_max_2 <= negative_max_1;
        positive_exponent_2 <= positive_exponent;
        negative_exponent_2 <= negative_exponent;
        positive_reciprocal_2 <= positive_max_1 == 0 ? {RECIPROCAL_WIDTH{1'b0}} : positive_table[positive_index];
        negative_reciprocal_2 <= negative_max_1 == 0 ? {RECIPROCAL_WIDTH{1'b0}} : negative_table[negative_index];
    end
    if (rst) begin
        valid_2 <= 1'b0;
    end
end

assign m_data = data_2;
assign m_last = last_2;
assign m_valid = valid_2;
assign m_max = positive_max_2;
assign m_reciprocal = positive_reciprocal_2;
assign m_exponent = positive_exponent_2;
assign m_max_negative = DUAL != 0 ? negative_max_2 : {WIDTH{1'b0}};
assign m_reciprocal_negative = DUAL != 0 ? negative_reciprocal_2 : {RECIPROCAL_WIDTH{1'b0}};
assign m_exponent_negative = DUAL != 0 ? negative_exponent_2 : {EXPONENT_WIDTH{1'b0}};

endmodule

`resetall
