// Second-level pipeline (paper Sec. IV-D, Fig. 8d-e): the FMU's two GEMM units under a controller that orders
// their jobs block by block.
//
// Per transformer block i, the DFQ GEMM unit (fp4_gemm DUAL = 1) runs block i's FC2, and the FP4 GEMM unit
// (DUAL = 0) runs block i+1's condition MLP (ada_lin), which depends only on the class condition. Each job is one
// tile on its own streams (activation and weight, as fp4_gemm) and ends with one result. The controller gates
// the activation streams (a unit takes no weights without activations):
//   overlap = 0: FC2, then ada_lin once FC2's result has left (the FP4 unit runs its layers one after another);
//   overlap = 1: both jobs of a block at once.
// Either way the next block's jobs start only when both results of this block have left (the next block's
// other layers need them). `overlap` must not change while a block is in flight.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fmu_overlap_controller #(
    parameter ROWS = 4,
    parameter COLS = 4,
    parameter GROUP = 128,
    parameter LANES = 128,
    parameter SCALE_WIDTH = 16,
    parameter WEIGHT_SCALE_WIDTH = 16,
    parameter OUT_WIDTH = 64
) (
    input  wire                               clk,
    input  wire                               rst,
    input  wire                               overlap,

    // FP4 (E2M1) GEMM unit: the condition MLP
    input  wire [ROWS*LANES*4-1:0]            s_cond_act_codes,
    input  wire [ROWS*SCALE_WIDTH-1:0]        s_cond_act_max,
    input  wire                               s_cond_act_last,
    input  wire                               s_cond_act_valid,
    output wire                               s_cond_act_ready,
    input  wire [COLS*LANES*4-1:0]            s_cond_weight_codes,
    input  wire [COLS*WEIGHT_SCALE_WIDTH-1:0] s_cond_weight_scale,
    input  wire                               s_cond_weight_valid,
    output wire                               s_cond_weight_ready,
    output wire [ROWS*COLS*OUT_WIDTH-1:0]     m_cond_result,
    output wire                               m_cond_valid,
    input  wire                               m_cond_ready,

    // DFQ GEMM unit: FC2
    input  wire [ROWS*LANES*4-1:0]            s_fc2_act_codes,
    input  wire [ROWS*SCALE_WIDTH-1:0]        s_fc2_act_max,
    input  wire [ROWS*SCALE_WIDTH-1:0]        s_fc2_act_max_negative,
    input  wire                               s_fc2_act_last,
    input  wire                               s_fc2_act_valid,
    output wire                               s_fc2_act_ready,
    input  wire [COLS*LANES*4-1:0]            s_fc2_weight_codes,
    input  wire [COLS*WEIGHT_SCALE_WIDTH-1:0] s_fc2_weight_scale,
    input  wire                               s_fc2_weight_valid,
    output wire                               s_fc2_weight_ready,
    output wire [ROWS*COLS*OUT_WIDTH-1:0]     m_fc2_result,
    output wire                               m_fc2_valid,
    input  wire                               m_fc2_ready
);

// Per block: has the job's last activation beat been taken (issued), has its result left (finished)?
reg fc2_issued, fc2_finished, cond_issued, cond_finished;
wire fc2_open = !fc2_issued;
wire cond_open = !cond_issued && (overlap || fc2_finished);

wire fc2_unit_act_ready, cond_unit_act_ready;
assign s_fc2_act_ready = fc2_unit_act_ready && fc2_open;
assign s_cond_act_ready = cond_unit_act_ready && cond_open;

wire fc2_done_now = m_fc2_valid && m_fc2_ready;
wire cond_done_now = m_cond_valid && m_cond_ready;
wire block_done = (fc2_finished || fc2_done_now) && (cond_finished || cond_done_now);

always @(posedge clk) begin
    if (s_fc2_act_valid && s_fc2_act_ready && s_fc2_act_last) begin
        fc2_issued <= 1'b1;
    end
    if (s_cond_act_valid && s_cond_act_ready && s_cond_act_last) begin
        cond_issued <= 1'b1;
    end
    if (fc2_done_now) begin
        fc2_finished <= 1'b1;
    end
    if (cond_done_now) begin
        cond_finished <= 1'b1;
    end
    if (rst || block_done) begin
        fc2_issued <= 1'b0;
        fc2_finished <= 1'b0;
        cond_issued <= 1'b0;
        cond_finished <= 1'b0;
    end
end

fp4_gemm #(
    .ROWS(ROWS),
    .COLS(COLS),
    .GROUP(GROUP),
    .LANES(LANES),
    .DUAL(0),
    .SCALE_WIDTH(SCALE_WIDTH),
    .WEIGHT_SCALE_WIDTH(WEIGHT_SCALE_WIDTH),
    .OUT_WIDTH(OUT_WIDTH)
) fp4_unit (
    .clk(clk),
    .rst(rst),
    .s_act_codes(s_cond_act_codes),
    .s_act_max(s_cond_act_max),
    .s_act_max_negative({(ROWS*SCALE_WIDTH){1'b0}}),
    .s_act_last(s_cond_act_last),
    .s_act_valid(s_cond_act_valid && cond_open),
    .s_act_ready(cond_unit_act_ready),
    .s_weight_codes(s_cond_weight_codes),
    .s_weight_scale(s_cond_weight_scale),
    .s_weight_valid(s_cond_weight_valid),
    .s_weight_ready(s_cond_weight_ready),
    .m_result(m_cond_result),
    .m_valid(m_cond_valid),
    .m_ready(m_cond_ready)
);

fp4_gemm #(
    .ROWS(ROWS),
    .COLS(COLS),
    .GROUP(GROUP),
    .LANES(LANES),
    .DUAL(1),
    .SCALE_WIDTH(SCALE_WIDTH),
    .WEIGHT_SCALE_WIDTH(WEIGHT_SCALE_WIDTH),
    .OUT_WIDTH(OUT_WIDTH)
) dfq_unit (
    .clk(clk),
    .rst(rst),
    .s_act_codes(s_fc2_act_codes),
    .s_act_max(s_fc2_act_max),
    .s_act_max_negative(s_fc2_act_max_negative),
    .s_act_last(s_fc2_act_last),
    .s_act_valid(s_fc2_act_valid && fc2_open),
    .s_act_ready(fc2_unit_act_ready),
    .s_weight_codes(s_fc2_weight_codes),
    .s_weight_scale(s_fc2_weight_scale),
    .s_weight_valid(s_fc2_weight_valid),
    .s_weight_ready(s_fc2_weight_ready),
    .m_result(m_fc2_result),
    .m_valid(m_fc2_valid),
    .m_ready(m_fc2_ready)
);

endmodule

`resetall
