"""One record of where a request's time and memory went, filled by the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Timings:
    """Milliseconds and counts for one request.

    ``ttft_ms`` is the *accounted* time to first token: from the start of the request (draft
    included) to the first generated token, plus ``reused_ms``, work taken from a cache instead of
    redone (eval's one draft pass per sample serving several budgets, and its one target prefill per
    sample and KV setting), counted into ``draft_ms`` or ``prefill_ms`` and ``ttft_ms`` as if it had
    run, so every request reads like a fresh one. ``ttft_wall_ms`` is the
    wall time the request actually took to its first token; the two differ only on a cache hit.
    ``kv_bytes`` is the target's KV cache during decode; ``kv_bytes_dense`` what dense decoding of
    the same request allocates.
    """

    n_prompt: int = 0
    n_kept: int = 0
    draft_ms: float = 0.0
    draft_tokens: int = 0
    capture_ms: float = 0.0
    select_ms: float = 0.0
    prefill_ms: float = 0.0
    prefill_tokens: int = 0
    ttft_ms: float = 0.0
    decode_ms: float = 0.0
    decode_tokens: int = 0
    kv_bytes: int = 0
    kv_bytes_dense: int = 0
    reused_ms: float = 0.0

    @property
    def ttft_wall_ms(self) -> float:
        """Wall time to the first token: the accounted ``ttft_ms`` less the cached work."""
        return max(0.0, self.ttft_ms - self.reused_ms)

    @property
    def decode_tps(self) -> float:
        return 1000.0 * self.decode_tokens / self.decode_ms if self.decode_ms > 0 else 0.0

    @property
    def prefill_tps(self) -> float:
        return 1000.0 * self.prefill_tokens / self.prefill_ms if self.prefill_ms > 0 else 0.0

    def server_timings(self, n_generated: int | None = None) -> dict:
        """The ``timings`` object of llama-server's responses, plus specllama's own fields
        (``ttft_ms`` accounted, ``ttft_wall_ms`` wall; see the class).

        ``predicted_n`` is ``n_generated``, the tokens the request produced (as
        ``usage.completion_tokens``); the first of them comes from the prefill, so ``decode_tokens``
        (forward passes) is one fewer when generation stopped at ``-n``. The per-token rates are
        over the forward passes ``predicted_ms`` measured. Without ``n_generated`` (no tokens at
        hand), ``predicted_n`` is the pass count.
        """
        pn, pms = self.prefill_tokens, self.prefill_ms
        dn, dms = self.decode_tokens, self.decode_ms
        return {
            "prompt_n": pn,
            "prompt_ms": round(pms, 3),
            "prompt_per_token_ms": round(pms / pn, 3) if pn else 0.0,
            "prompt_per_second": round(1000.0 * pn / pms, 3) if pms else 0.0,
            "predicted_n": dn if n_generated is None else int(n_generated),
            "predicted_ms": round(dms, 3),
            "predicted_per_token_ms": round(dms / dn, 3) if dn else 0.0,
            "predicted_per_second": round(1000.0 * dn / dms, 3) if dms else 0.0,
            "draft_ms": round(self.draft_ms, 3),
            "draft_n": self.draft_tokens,
            "capture_ms": round(self.capture_ms, 3),
            "select_ms": round(self.select_ms, 3),
            "ttft_ms": round(self.ttft_ms, 3),
            "ttft_wall_ms": round(self.ttft_wall_ms, 3),
            "reused_ms": round(self.reused_ms, 3),
            "prompt_total_n": self.n_prompt,
            "prompt_kept_n": self.n_kept,
            "kv_bytes": self.kv_bytes,
            "kv_bytes_dense": self.kv_bytes_dense,
        }

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """The one-line stderr summary of ``run``."""
        mib = 1024 * 1024
        parts = [f"kept {self.n_kept}/{self.n_prompt} tokens"]
        if self.draft_ms:
            parts.append(f"draft {self.draft_ms / 1000:.2f} s")
        parts.append(f"target prefill {self.prefill_ms / 1000:.2f} s")
        if self.reused_ms:
            parts.append(f"TTFT {self.ttft_ms / 1000:.2f} s accounted ({self.reused_ms / 1000:.2f} s of it "
                         f"from the score cache or the prefill cache), {self.ttft_wall_ms / 1000:.2f} s wall")
        else:
            parts.append(f"TTFT {self.ttft_ms / 1000:.2f} s")
        parts.append(f"decode {self.decode_tps:.1f} t/s")
        if self.kv_bytes:
            parts.append(f"KV {self.kv_bytes / mib:.1f} MiB (dense {self.kv_bytes_dense / mib:.1f} MiB)")
        return " | ".join(parts)
