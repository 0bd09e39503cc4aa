"""cocotb side of test_stream_frame_fifo.py: random frames with gaps and backpressure; every beat arrives in order,
and none leaves before its frame's last beat has arrived."""

import random

import cocotb
from cocotb.triggers import RisingEdge
from streams import start


@cocotb.test()
async def frames_leave_whole(dut):
    depth, width = int(dut.DEPTH.value), int(dut.DATA_WIDTH.value)
    rng = random.Random(31)
    frames = [[rng.randrange(2**width) for _ in range(rng.randint(1, depth))] for _ in range(60)]
    beats = [(v, i == len(f) - 1) for f in frames for i, v in enumerate(f)]
    await start(dut)
    sent, received, arrived_frames = 0, [], 0
    while len(received) < len(beats):
        offering = sent < len(beats) and rng.random() < 0.7
        dut.s_valid.value = offering
        if offering:
            dut.s_data.value, dut.s_last.value = beats[sent]
        dut.m_ready.value = rng.random() < 0.6
        await RisingEdge(dut.clk)
        if int(dut.m_valid.value) and int(dut.m_ready.value):
            frame_of_beat = sum(1 for _, last in received if last)
            # store and forward: this beat's frame has fully arrived before any of it leaves
            assert frame_of_beat < arrived_frames, "a beat left before its frame was complete"
            received.append((dut.m_data.value.to_unsigned(), bool(int(dut.m_last.value))))
        if offering and int(dut.s_ready.value):
            arrived_frames += beats[sent][1]
            sent += 1
    assert received == beats
