"""GPTConfig: the shape of a model, saved as config.json beside its weights."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from cllm_app.fsutil import atomic_write_json


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 257  # 256 bytes + <|endoftext|>
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128

    @property
    def n_params(self) -> int:
        """Parameter count; the output head is tied to `wte`, so it adds nothing."""
        c = self.n_embd
        block = (
            2 * c  # ln_1
            + c * 3 * c + 3 * c  # attn.c_attn
            + c * c + c  # attn.c_proj
            + 2 * c  # ln_2
            + c * 4 * c + 4 * c  # mlp.c_fc
            + 4 * c * c + c  # mlp.c_proj
        )
        return self.vocab_size * c + self.block_size * c + self.n_layer * block + 2 * c

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> "GPTConfig":
        return cls(**json.loads(Path(path).read_text()))
