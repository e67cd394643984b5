"""The batch accumulator: a token stream in, fixed (batch, context) windows out.

Like llm.c's loader, a batch reads B*T+1 tokens (the last one is only a target)
and consumes B*T, so leftovers carry over to the next batch: the seed's example,
50 + 30 + 80 + 100 tokens at 256 per batch, gives one batch and 4 tokens left.
"""

from collections import deque

import numpy as np


class BatchAccumulator:
    def __init__(self, batch_size: int, context: int):
        if batch_size < 1 or context < 1:
            raise ValueError("batch_size and context must be at least 1")
        self.B, self.T = batch_size, context
        self._chunks: deque[np.ndarray] = deque()
        self._offset = 0  # tokens of the first chunk already consumed
        self._count = 0  # tokens held, not yet consumed

    @property
    def tokens_per_batch(self) -> int:
        return self.B * self.T

    def add(self, tokens) -> None:
        tokens = np.asarray(tokens)
        if tokens.size:
            self._chunks.append(tokens.reshape(-1))
            self._count += tokens.size

    def __len__(self) -> int:
        """Tokens held and not yet consumed."""
        return self._count

    def ready(self) -> bool:
        return self._count >= self.tokens_per_batch + 1

    def _peek(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int32)
        filled, offset = 0, self._offset
        for chunk in self._chunks:
            take = min(n - filled, chunk.size - offset)
            out[filled : filled + take] = chunk[offset : offset + take]
            filled += take
            offset = 0
            if filled == n:
                break
        return out

    def _consume(self, n: int) -> None:
        self._count -= n
        while n:
            head = self._chunks[0]
            left = head.size - self._offset
            if n < left:
                self._offset += n
                return
            n -= left
            self._chunks.popleft()
            self._offset = 0

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), each (B, T) int32; targets are the inputs shifted by one."""
        if not self.ready():
            raise ValueError(
                f"a batch needs {self.tokens_per_batch + 1} tokens and only {self._count} are held"
            )
        n = self.tokens_per_batch
        window = self._peek(n + 1)
        self._consume(n)
        return window[:-1].reshape(self.B, self.T), window[1:].reshape(self.B, self.T)

    def clear(self) -> None:
        self._chunks.clear()
        self._offset = self._count = 0
