"""SpecKV-PC: SpecPC cuts the prompt to ``--budget-pc``, then SpecKV prunes the target's KV cache
to ``--budget``, reusing the draft's lookahead answer generated during the SpecPC pass.

The draft writes that answer, so its SpecPC pass is the exact one (all layers, full attention):
the cheap draft of ``draftpass`` has no reliable answer to give."""

from __future__ import annotations

from dataclasses import replace

from .base import Budget, Method
from .catalog import BUDGET_PC
from .draftpass import EXACT
from .setting import Configured, TokenBudget
from .specpc import SpecPCConfig, SpecPCStage
from .speckv import AttentionKVStage, SpecKVConfig

DEFAULT_BUDGET_PC = 2048


class SpecKVPC(Method):
    name = "speckvpc"
    help = "SpecPC to --budget-pc, then SpecKV to --budget, sharing the draft's answer"
    # --lookahead caps the shared answer (SpecKV's); the SpecPC pass scores with all of it, with the
    # exact draft, and SpecKV pools with its own kernel
    settings = {"budget_pc": TokenBudget(BUDGET_PC, DEFAULT_BUDGET_PC),
                "cfg": Configured(SpecPCConfig, skip=("lookahead", "draft")),
                "speckv": Configured(SpecKVConfig, skip=("kernel",))}

    def __init__(self, budget: Budget = Budget(), budget_pc: Budget = Budget(tokens=DEFAULT_BUDGET_PC),
                 cfg: SpecPCConfig = SpecPCConfig(), speckv: SpecKVConfig = SpecKVConfig(),
                 n_predict: int = 256, **_):
        lookahead = max(1, speckv.lookahead_len(n_predict))
        pc = SpecPCStage(replace(cfg, lookahead=max(cfg.lookahead, lookahead), draft=EXACT))
        super().__init__(prompt_stage=pc, kv_stage=AttentionKVStage(speckv, self.name), budget=budget,
                         budget_pc=budget_pc)
