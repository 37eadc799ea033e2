"""Token sampling through llama.cpp's sampler chain (greedy, temperature, top-k, top-p, seed)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, require_int, require_number
from .lib import C

DEFAULT_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: a random seed per run


@dataclass(frozen=True)
class SamplingConfig:
    """llama-cli style sampling settings. ``temp <= 0`` means greedy decoding."""

    temp: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        require_number(self.temp, "--temp")
        require_int(self.top_k, "--top-k")
        require_number(self.top_p, "--top-p")
        require_int(self.seed, "--seed", 0xFFFFFFFF)
        if self.temp < 0:
            raise ConfigError(f"--temp must be >= 0, got {self.temp}")
        if self.top_k < 0:
            raise ConfigError(f"--top-k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if not 0 <= self.seed <= 0xFFFFFFFF:
            raise ConfigError(f"--seed must be in [0, 2^32-1], got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temp <= 0


class Sampler:
    """A llama.cpp sampler chain built from a :class:`SamplingConfig`; free with :meth:`close`."""

    def __init__(self, cfg: SamplingConfig):
        self.cfg = cfg
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        if cfg.greedy:
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_greedy())
        else:
            if cfg.top_k > 0:
                C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_k(cfg.top_k))
            if cfg.top_p < 1.0:
                C.llama_sampler_chain_add(chain, C.llama_sampler_init_top_p(cfg.top_p, 1))
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_temp(cfg.temp))
            C.llama_sampler_chain_add(chain, C.llama_sampler_init_dist(cfg.seed))
        self._chain = chain

    def sample(self, ctx, i: int = -1) -> int:
        """Sample from the logits of token ``i`` of ``ctx``'s last decode call and accept the token."""
        return int(C.llama_sampler_sample(self._chain, ctx.ptr, i))

    def reset(self) -> None:
        C.llama_sampler_reset(self._chain)

    def close(self) -> None:
        if self._chain is not None:
            C.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
