// FP4 GEMM unit (paper Fig. 7c FMU, 7f): a ROWS x COLS array of dot-product PEs over 4-bit codes, output-stationary.
//
// Each beat joins two streams: LANES activation codes of each of ROWS rows (tokens) with their group scales, and
// LANES weight codes of each of COLS columns (output channels) with their group scales. PE (r, c) looks up LANES
// products in its own tables (fp4_product_lut: exact, product * 4) and adds them; GROUP / LANES beats make one
// group, summed exactly in GROUP_SUM_WIDTH = 9 + clog2(GROUP) bits (|sum| <= 144 GROUP; 16 bits for GROUP = 128,
// where the paper uses INT32). At each group's end the sum is scaled by the activation and weight scales and added
// to the output accumulator; the beat with s_act_last closes the tile (the reduction dimension), and one beat of
// ROWS x COLS results leaves. Scales are read on the group's last beat.
//
// Scales and output, all exact integers (no rounding anywhere in the unit):
//   activation scale: the quantizer's group maximum m (SCALE_WIDTH bits, unsigned, the input's units); E2M1 codes
//     stand for value * m / 6, DFQ negative (E1M2) codes for value * m_neg / 3.5;
//   weight scale: an unsigned WEIGHT_SCALE_WIDTH-bit integer w (the offline weight scale in a fixed-point unit);
//   DUAL = 0 (E2M1 x E2M1): result = sum over groups of S m w, where S = sum of product * 4: unit 1/24;
//   DUAL = 1 (DFQ x E2M1): negative- and positive-activation products are summed apart (two scales), and
//     result = sum over groups of (12 S_neg m_neg + 7 S_pos m_pos) w: unit 1/168 (= 4 x 6 x 7 / 1, as
//     S_neg m_neg / 14 = 12 S_neg m_neg / 168 and S_pos m_pos / 24 = 7 S_pos m_pos / 168).
//   The output is OUT_WIDTH-bit two's complement in units of (input unit) x (weight-scale unit) / 24 or / 168;
//   a group's contribution needs CONTRIBUTION_WIDTH bits, so OUT_WIDTH - CONTRIBUTION_WIDTH bits of headroom
//   allow 2**(OUT_WIDTH - CONTRIBUTION_WIDTH) groups per tile without overflow.
// Pipeline: products and lane sum, group sum, x activation scale, x weight scale, accumulate: latency 5 from the
// tile's last beat, initiation interval 1 beat; the whole pipeline stalls while a result is held.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fp4_gemm #(
    parameter ROWS = 4,
    parameter COLS = 4,
    parameter GROUP = 128,
    parameter LANES = 128,
    parameter DUAL = 0,
    parameter SCALE_WIDTH = 16,
    parameter WEIGHT_SCALE_WIDTH = 16,
    parameter OUT_WIDTH = 64
) (
    input  wire                               clk,
    input  wire                               rst,

    input  wire [ROWS*LANES*4-1:0]            s_act_codes,
    input  wire [ROWS*SCALE_WIDTH-1:0]        s_act_max,           // E2M1: m; DFQ: m_pos
    input  wire [ROWS*SCALE_WIDTH-1:0]        s_act_max_negative,  // DFQ: m_neg; unused for E2M1
    input  wire                               s_act_last,
    input  wire                               s_act_valid,
    output wire                               s_act_ready,

    input  wire [COLS*LANES*4-1:0]            s_weight_codes,
    input  wire [COLS*WEIGHT_SCALE_WIDTH-1:0] s_weight_scale,
    input  wire                               s_weight_valid,
    output wire                               s_weight_ready,

    output wire [ROWS*COLS*OUT_WIDTH-1:0]     m_result,  // PE (r, c) at index r * COLS + c
    output reg                                m_valid,
    input  wire                               m_ready
);

localparam PES = ROWS * COLS;
localparam BEATS = GROUP / LANES;
localparam BEAT_WIDTH = BEATS > 1 ? $clog2(BEATS) : 1;
localparam integer LAST_BEAT = BEATS - 1;
localparam LANE_SUM_WIDTH = 9 + $clog2(LANES);    // |sum| <= 144 LANES < 2**(8 + clog2(LANES))
localparam GROUP_SUM_WIDTH = 9 + $clog2(GROUP);   // the same bound over a group
localparam SCALED_WIDTH = GROUP_SUM_WIDTH + SCALE_WIDTH + (DUAL != 0 ? 5 : 0);  // DFQ: 12 |.| + 7 |.| < 2**5 |.|
localparam CONTRIBUTION_WIDTH = SCALED_WIDTH + WEIGHT_SCALE_WIDTH;

initial begin
    if (ROWS < 1 || COLS < 1 || LANES < 1 || GROUP < LANES || GROUP % LANES != 0) begin
        $error("Error: fp4_gemm needs ROWS, COLS >= 1 and GROUP a multiple of LANES (instance %m)");
        $finish;
    end
    if (OUT_WIDTH < CONTRIBUTION_WIDTH) begin
        $error("Error: fp4_gemm OUT_WIDTH %0d is narrower than one group's contribution, %0d bits (instance %m)",
            OUT_WIDTH, CONTRIBUTION_WIDTH);
        $finish;
    end
end

wire advance = !m_valid || m_ready;
// Join: a beat moves when both streams offer one and the pipeline advances.
wire take = s_act_valid && s_weight_valid && advance;
assign s_act_ready = advance && s_weight_valid;
assign s_weight_ready = advance && s_act_valid;

reg [BEAT_WIDTH-1:0] beat;
wire group_end = beat == LAST_BEAT[BEAT_WIDTH-1:0];

always @(posedge clk) begin
    if (take) begin
        beat <= group_end ? {BEAT_WIDTH{1'b0}} : beat + 1'b1;
    end
    if (rst) begin
        beat <= {BEAT_WIDTH{1'b0}};
    end
end

// Sign extension to a wider two's-complement word (TO > FROM).
function automatic [GROUP_SUM_WIDTH-1:0] lane_to_group(input [LANE_SUM_WIDTH-1:0] value);
    begin
        lane_to_group = {{(GROUP_SUM_WIDTH-LANE_SUM_WIDTH+1){value[LANE_SUM_WIDTH-1]}}, value[LANE_SUM_WIDTH-2:0]};
    end
endfunction

function automatic [SCALED_WIDTH-1:0] group_to_scaled(input [GROUP_SUM_WIDTH-1:0] value);
    begin
        group_to_scaled = {{(SCALED_WIDTH-GROUP_SUM_WIDTH+1){value[GROUP_SUM_WIDTH-1]}}, value[GROUP_SUM_WIDTH-2:0]};
    end
endfunction

function automatic [CONTRIBUTION_WIDTH-1:0] scaled_to_contribution(input [SCALED_WIDTH-1:0] value);
    begin
        scaled_to_contribution = {{(WEIGHT_SCALE_WIDTH+1){value[SCALED_WIDTH-1]}}, value[SCALED_WIDTH-2:0]};
    end
endfunction

function automatic [OUT_WIDTH-1:0] contribution_to_out(input [CONTRIBUTION_WIDTH-1:0] value);
    begin
        contribution_to_out = {{(OUT_WIDTH-CONTRIBUTION_WIDTH+1){value[CONTRIBUTION_WIDTH-1]}}, value[CONTRIBUTION_WIDTH-2:0]};
    end
endfunction

// Stage 1: products and lane sums (DFQ: apart by the activation code's sign bit).
wire [PES*LANE_SUM_WIDTH-1:0] lane_sum_positive, lane_sum_negative;

genvar pe, lane;
generate
    for (pe = 0; pe < PES; pe = pe + 1) begin : pes
        localparam ROW = pe / COLS;
        localparam COL = pe % COLS;
        wire [LANES*9-1:0] products;
        for (lane = 0; lane < LANES; lane = lane + 1) begin : lanes
            fp4_product_lut #(
                .DUAL(DUAL)
            ) product_lut (
                .activation(s_act_codes[(ROW*LANES+lane)*4 +: 4]),
                .weight(s_weight_codes[(COL*LANES+lane)*4 +: 4]),
                .product(products[lane*9 +: 9])
            );
        end
        reg [LANE_SUM_WIDTH-1:0] positive, negative;
        integer l;
        always @* begin
            positive = {LANE_SUM_WIDTH{1'b0}};
            negative = {LANE_SUM_WIDTH{1'b0}};
            for (l = 0; l < LANES; l = l + 1) begin
                if (DUAL != 0 && s_act_codes[(ROW*LANES+l)*4 + 3])
                    negative = negative + {{(LANE_SUM_WIDTH-8){products[l*9+8]}}, products[l*9 +: 8]};
                else
                    positive = positive + {{(LANE_SUM_WIDTH-8){products[l*9+8]}}, products[l*9 +: 8]};
            end
        end
        assign lane_sum_positive[pe*LANE_SUM_WIDTH +: LANE_SUM_WIDTH] = positive;
        assign lane_sum_negative[pe*LANE_SUM_WIDTH +: LANE_SUM_WIDTH] = negative;
    end
endgenerate

reg valid_1, group_end_1, last_1;
reg [PES*LANE_SUM_WIDTH-1:0] positive_1, negative_1;
reg [ROWS*SCALE_WIDTH-1:0] act_max_1, act_max_negative_1;
reg [COLS*WEIGHT_SCALE_WIDTH-1:0] weight_scale_1;

always @(posedge clk) begin
    if (advance) begin
        valid_1 <= take;
        group_end_1 <= group_end;
        last_1 <= s_act_last;
        positive_1 <= lane_sum_positive;
        negative_1 <= lane_sum_negative;
        act_max_1 <= s_act_max;
        act_max_negative_1 <= s_act_max_negative;
        weight_scale_1 <= s_weight_scale;
    end
    if (rst) begin
        valid_1 <= 1'b0;
    end
end

// Stage 2: group sums. The register holds the running sum; valid_2 marks a complete group.
reg valid_2, last_2, group_open;
reg [PES*GROUP_SUM_WIDTH-1:0] positive_2, negative_2;
reg [ROWS*SCALE_WIDTH-1:0] act_max_2, act_max_negative_2;
reg [COLS*WEIGHT_SCALE_WIDTH-1:0] weight_scale_2;

integer p;
always @(posedge clk) begin
    if (advance) begin
        valid_2 <= valid_1 && group_end_1;
        if (valid_1) begin
            for (p = 0; p < PES; p = p + 1) begin
                positive_2[p*GROUP_SUM_WIDTH +: GROUP_SUM_WIDTH] <= (group_open ? positive_2[p*GROUP_SUM_WIDTH +: GROUP_SUM_WIDTH] : {GROUP_SUM_WIDTH{1'b0}})
                    + lane_to_group(positive_1[p*LANE_SUM_WIDTH +: LANE_SUM_WIDTH]);
                negative_2[p*GROUP_SUM_WIDTH +: GROUP_SUM_WIDTH] <= (group_open ? negative_2[p*GROUP_SUM_WIDTH +: GROUP_SUM_WIDTH] : {GROUP_SUM_WIDTH{1'b0}})
                    + lane_to_group(negative_1[p*LANE_SUM_WIDTH +: LANE_SUM_WIDTH]);
            end
            group_open <= !group_end_1;
            last_2 <= last_1;
            act_max_2 <= act_max_1;
            act_max_negative_2 <= act_max_negative_1;
            weight_scale_2 <= weight_scale_1;
        end
    end
    if (rst) begin
        valid_2 <= 1'b0;
        group_open <= 1'b0;
    end
end

// Stage 3: times the activation scale (DFQ: each half by its own, with the constants 12 and 7).
function automatic [SCALED_WIDTH-1:0] times_max(input [GROUP_SUM_WIDTH-1:0] sum, input [SCALE_WIDTH-1:0] max);
    begin
        times_max = group_to_scaled(sum) * {{(SCALED_WIDTH-SCALE_WIDTH){1'b0}}, max};  // low bits of a product are sign-agnostic
    end
endfunction

wire [PES*SCALED_WIDTH-1:0] scaled;

genvar pe_scaled;
generate
    for (pe_scaled = 0; pe_scaled < PES; pe_scaled = pe_scaled + 1) begin : scaling
        localparam ROW = pe_scaled / COLS;
        wire [SCALED_WIDTH-1:0] positive_scaled = times_max(positive_2[pe_scaled*GROUP_SUM_WIDTH +: GROUP_SUM_WIDTH],
                                                            act_max_2[ROW*SCALE_WIDTH +: SCALE_WIDTH]);
        if (DUAL != 0) begin : dual
            wire [SCALED_WIDTH-1:0] negative_scaled = times_max(negative_2[pe_scaled*GROUP_SUM_WIDTH +: GROUP_SUM_WIDTH],
                                                                act_max_negative_2[ROW*SCALE_WIDTH +: SCALE_WIDTH]);
            assign scaled[pe_scaled*SCALED_WIDTH +: SCALED_WIDTH] = (negative_scaled << 3) + (negative_scaled << 2)
                                                                    + (positive_scaled << 3) - positive_scaled;
        end else begin : single
            wire unused_negative_scale = ^act_max_negative_2[ROW*SCALE_WIDTH +: SCALE_WIDTH];  // E2M1: one scale
            assign scaled[pe_scaled*SCALED_WIDTH +: SCALED_WIDTH] = positive_scaled;
        end
    end
endgenerate

reg valid_3, last_3;
reg [PES*SCALED_WIDTH-1:0] scaled_3;
reg [COLS*WEIGHT_SCALE_WIDTH-1:0] weight_scale_3;

always @(posedge clk) begin
    if (advance) begin
        valid_3 <= valid_2;
        last_3 <= last_2;
        weight_scale_3 <= weight_scale_2;
        scaled_3 <= scaled;
    end
    if (rst) begin
        valid_3 <= 1'b0;
    end
end

// Stage 4: times the weight scale.
reg valid_4, last_4;
reg [PES*CONTRIBUTION_WIDTH-1:0] contribution_4;

integer w;
always @(posedge clk) begin
    if (advance) begin
        valid_4 <= valid_3;
        last_4 <= last_3;
        for (w = 0; w < PES; w = w + 1) begin
            contribution_4[w*CONTRIBUTION_WIDTH +: CONTRIBUTION_WIDTH] <= scaled_to_contribution(scaled_3[w*SCALED_WIDTH +: SCALED_WIDTH])
                * {{SCALED_WIDTH{1'b0}}, weight_scale_3[(w%COLS)*WEIGHT_SCALE_WIDTH +: WEIGHT_SCALE_WIDTH]};
        end
    end
    if (rst) begin
        valid_4 <= 1'b0;
    end
end

// Stage 5: the tile accumulator, which is also the output register.
reg [PES*OUT_WIDTH-1:0] accumulator;
reg tile_open;
assign m_result = accumulator;

integer a;
always @(posedge clk) begin
    if (advance) begin
        m_valid <= valid_4 && last_4;
        if (valid_4) begin
            for (a = 0; a < PES; a = a + 1) begin
                accumulator[a*OUT_WIDTH +: OUT_WIDTH] <= (tile_open ? accumulator[a*OUT_WIDTH +: OUT_WIDTH] : {OUT_WIDTH{1'b0}})
                    + contribution_to_out(contribution_4[a*CONTRIBUTION_WIDTH +: CONTRIBUTION_WIDTH]);
            end
            tile_open <= !last_4;
        end
    end
    if (rst) begin
        m_valid <= 1'b0;
        tile_open <= 1'b0;
    end
end

endmodule

`resetall
