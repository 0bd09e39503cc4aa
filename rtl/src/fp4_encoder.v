// FP4 encode pass of the quantizer (paper Fig. 7a / 7g): scaled integers in, 4-bit codes out, by table look-up.
//
// DUAL = 0: t = round(12 x / max|x|) in [-12, 12]; address t + 12 (a LUT5 per code bit) gives the E2M1 code of
//           the value t / 2 (E2M1 values times 2 are the integers {0, 1, 2, 3, 4, 6, 8, 12}).
// DUAL = 1: DFQ. Negatives are scaled to [-7, 0] (Table I's E1M2: every integer exact), positives to [0, 12]
//           (E2M1); address t + 7.
// t = +-5, +-7, +-10 lie halfway between two E2M1 values: TIE_UP = 0 picks the even code (OCP MX), TIE_UP = 1
// rounds toward +inf as the released CUDA kernel. Inputs outside the range saturate. LANES codes per beat,
// one registered stage.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fp4_encoder #(
    parameter LANES = 8,
    parameter DUAL = 0,
    parameter TIE_UP = 0
) (
    input  wire               clk,
    input  wire               rst,

    input  wire [LANES*5-1:0] s_scaled,
    input  wire               s_valid,
    output wire               s_ready,

    output reg  [LANES*4-1:0] m_code,
    output reg                m_valid,
    input  wire               m_ready
);

localparam integer LOW = DUAL ? -7 : -12;
localparam signed [5:0] LOW6 = DUAL ? -6'sd7 : -6'sd12;
localparam signed [5:0] HIGH6 = 6'sd12;
localparam [4:0] TOP_ADDRESS = DUAL ? 5'd19 : 5'd24;

// 3-bit E2M1 magnitude code of |t| / 2, for |t| in 0..12; `negative` decides ties under TIE_UP.
function automatic [2:0] e2m1_magnitude(input integer magnitude, input negative);
    reg up;  // at a tie: take the larger magnitude?
    begin
        up = TIE_UP != 0 && !negative;
        case (magnitude)
            0: e2m1_magnitude = 3'd0;
            1: e2m1_magnitude = 3'd1;
            2: e2m1_magnitude = 3'd2;
            3: e2m1_magnitude = 3'd3;
            4: e2m1_magnitude = 3'd4;
            5: e2m1_magnitude = up ? 3'd5 : 3'd4;  // 2.5: 2.0 (even code) or 3.0
            6: e2m1_magnitude = 3'd5;
            7: e2m1_magnitude = (up || TIE_UP == 0) ? 3'd6 : 3'd5;  // 3.5: 4.0 (even code) or 3.0
            8: e2m1_magnitude = 3'd6;
            9: e2m1_magnitude = 3'd6;
            10: e2m1_magnitude = up ? 3'd7 : 3'd6;  // 5.0: 4.0 (even code) or 6.0
            default: e2m1_magnitude = 3'd7;
        endcase
    end
endfunction

function automatic [3:0] encode(input integer t);
    integer magnitude;
    begin
        magnitude = t < 0 ? -t : t;
        if (t == 0)
            encode = 4'b0000;
        else if (DUAL != 0 && t < 0)
            encode = {1'b1, magnitude[2:0]};  // E1M2 (bias 0): value 0.5 * code
        else
            encode = {t < 0, e2m1_magnitude(magnitude, t < 0)};
    end
endfunction

// The table: a constant function of the 5-bit address, which synthesis maps to one LUT5 per code bit.
function automatic [3:0] table_entry(input [4:0] address);
    begin
        table_entry = encode({27'd0, address} + LOW);
    end
endfunction

assign s_ready = !m_valid || m_ready;

wire [LANES*4-1:0] codes;

genvar g;
generate
    for (g = 0; g < LANES; g = g + 1) begin : lane
        wire signed [5:0] t = {s_scaled[g*5 + 4], s_scaled[g*5 +: 5]};
        wire signed [5:0] offset = t - LOW6;  // in 0..TOP_ADDRESS once t is in range, so bit 5 is 0
        wire [4:0] address = (t < LOW6) ? 5'd0 : (t > HIGH6) ? TOP_ADDRESS : offset[4:0];
        wire unused_sign = offset[5];
        assign codes[g*4 +: 4] = table_entry(address);
    end
endgenerate

always @(posedge clk) begin
    if (s_valid && s_ready) begin
        m_code <= codes;
    end
    if (s_ready) begin
        m_valid <= s_valid;
    end
    if (rst) begin
        m_valid <= 1'b0;
    end
end

endmodule

`resetall
