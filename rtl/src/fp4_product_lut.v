// FP4 x FP4 product table (paper Fig. 7f), combinational: {activation code, weight code} addresses 256 entries.
//
// Entries are exact signed fixed-point integers with 2 fraction bits (product * 4, |product * 4| <= 144, 9 bits):
// FP8 cannot hold every DFQ product exactly (3.5 * 3 = 10.5), and the accumulator adds integers anyway.
// DUAL = 0: activation E2M1 x weight E2M1 (standard GEMM unit).
// DUAL = 1: activation DFQ (E1M2 if its sign bit is set, else E2M1) x weight E2M1 (FC2 GEMM unit).
// Shared by fp4_lut_multiplier (one registered product) and fp4_gemm (one table per PE lane).
`resetall
`timescale 1ns / 1ps
`default_nettype none

module fp4_product_lut #(
    parameter DUAL = 0
) (
    input  wire [3:0]        activation,
    input  wire [3:0]        weight,
    output wire signed [8:0] product
);

// Value * 2 of an FP4 code: E2M1 {0, 0.5, 1, 1.5, 2, 3, 4, 6} -> {0, 1, 2, 3, 4, 6, 8, 12};
// Table I's E1M2 (bias 0) {0, 0.5, ..., 3.5} -> {0, 1, ..., 7}.
function automatic signed [4:0] twice_e2m1(input [3:0] code);
    reg [3:0] magnitude;
    begin
        case (code[2:0])
            3'd0: magnitude = 4'd0;
            3'd1: magnitude = 4'd1;
            3'd2: magnitude = 4'd2;
            3'd3: magnitude = 4'd3;
            3'd4: magnitude = 4'd4;
            3'd5: magnitude = 4'd6;
            3'd6: magnitude = 4'd8;
            default: magnitude = 4'd12;
        endcase
        twice_e2m1 = code[3] ? -$signed({1'b0, magnitude}) : $signed({1'b0, magnitude});
    end
endfunction

function automatic signed [4:0] twice_activation(input [3:0] code);
    begin
        if (DUAL != 0 && code[3])
            twice_activation = -$signed({2'b00, code[2:0]});
        else
            twice_activation = twice_e2m1(code);
    end
endfunction

function automatic signed [8:0] widen(input signed [4:0] value);
    begin
        widen = $signed({{4{value[4]}}, value});
    end
endfunction

reg signed [8:0] product_table [0:255];

integer address;
initial begin
    for (address = 0; address < 256; address = address + 1) begin
        product_table[address] = widen(twice_activation(address[7:4])) * widen(twice_e2m1(address[3:0]));
    end
end

assign product = product_table[{activation, weight}];

endmodule

`resetall
