"""stream_frame_fifo: beats leave in order, and none before its frame's last beat has arrived, at the smallest
depth and at a deeper one (cocotb side: cocotb_stream_frame_fifo.py). A frame holds 1 to DEPTH beats."""

import pytest
from simulate import simulate


@pytest.mark.parametrize("depth", [2, 16])
def test_stream_frame_fifo(simulator, depth):
    simulate(simulator, "stream_frame_fifo", "cocotb_stream_frame_fifo", {"DATA_WIDTH": 8, "DEPTH": depth})
