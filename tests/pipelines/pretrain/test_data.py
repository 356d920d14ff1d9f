from __future__ import annotations

import numpy as np

from tanuki_pipelines.pretrain.data import pack

EOS_ID = 0  # whatever the tokenizer says; 0 in a foreign layout


def test_pack_joins_documents_with_eos_and_drops_the_remainder() -> None:
    packed = pack([[10, 11, 12], [20, 21], [30, 31, 32, 33]], seq_len=3, eos_id=EOS_ID)
    stream = [10, 11, 12, EOS_ID, 20, 21, EOS_ID, 30, 31, 32, 33, EOS_ID]
    assert packed.dtype == np.int32
    assert packed.tolist() == [stream[0:4], stream[4:8], stream[8:12]]
    assert pack([[1, 2]], seq_len=8, eos_id=EOS_ID).shape == (0, 9)
