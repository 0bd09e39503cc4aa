// FP4 LUT multiplier: {activation code, weight code} addresses the 256-entry product table (fp4_product_lut).
//
// Products are exact signed fixed-point integers with 2 fraction bits (product * 4).
// DUAL = 0: activation E2M1 x weight E2M1 (standard GEMM unit).
// DUAL = 1: activation DFQ (E1M2 if its sign bit is set, else E2M1) x weight E2M1 (FC2 GEMM unit).
// One registered stage with a valid/ready handshake.
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fp4_lut_multiplier #(
    parameter DUAL = 0
) (
    input  wire              clk,
    input  wire              rst,

    input  wire [3:0]        s_activation,
    input  wire [3:0]        s_weight,
    input  wire              s_valid,
    output wire              s_ready,

    output reg signed [8:0]  m_product,
    output reg               m_valid,
    input  wire              m_ready
);

wire signed [8:0] product;

fp4_product_lut #(
    .DUAL(DUAL)
) product_lut (
    .activation(s_activation),
    .weight(s_weight),
    .product(product)
);

// The output register takes a new beat when it is empty or being drained.
assign s_ready = !m_valid || m_ready;

always @(posedge clk) begin
    if (s_valid && s_ready) begin
        m_product <= product;
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
