"""``specllama serve``: an OpenAI-compatible server with compression, locally or in front of an
upstream (llama-server, vLLM) that runs the target.

* :mod:`.config`: :class:`ServeConfig`, :class:`UpstreamConfig`.
* :mod:`.schema`: request bodies -> prompt, generation and method settings (OpenAI-style 400s).
* :mod:`.worker`: the one thread that owns the runtime; a bounded queue; cancellation.
* :mod:`.app`: the Starlette routes; :mod:`.responses`: response bodies and SSE chunks.
* :mod:`.llama_api`, :mod:`.llama_schema`: llama-server's own endpoints (``/completion``,
  ``/tokenize``, ``/detokenize``, ``/props``, ``/metrics``); :mod:`.metrics`: Prometheus counters.
* :mod:`.upstream`: compress-then-forward, for the server and for ``run``/``chat --upstream``.
* :mod:`.server`: binding and uvicorn; :mod:`.loadtest`: a bounded loopback load test.

Starlette, uvicorn and httpx are imported by the modules that need them, not here.
"""

from .config import ServeConfig, UpstreamConfig

__all__ = ["ServeConfig", "UpstreamConfig"]
