"""A serving cascade: an OpenAI-compatible endpoint that answers with the small model and defers
to the large one by the small model's calibrated confidence (``calib-harness serve``).

* :mod:`calib_harness.serve.app` -- the FastAPI app (``create_app(router, ServeConfig(...))``);
* :mod:`calib_harness.serve.features` -- confidence features from OpenAI-compatible logprobs
  (standard library only);
* :mod:`calib_harness.serve.upstream` -- llama.cpp's server on the shipped GGUF models
  (``python -m calib_harness.serve.upstream smollm2-135m``), for examples, tests and the bench.

Nothing heavy is imported here: import the submodule you need.
"""
