"""llama.cpp's OpenAI-compatible server, loading models the way ``local:`` does.

``python -m robustify.models.serve_local --model PATH --host 127.0.0.1 --port 8080`` takes
the arguments of ``python -m llama_cpp.server`` (the ``server`` extra) and runs it with
llama.cpp's extra CPU buffer types turned off (see
:func:`robustify.models.local.without_extra_buffers`): the plain server crashes at the
first answer on CPUs that report AMX inside a virtual machine, and with the same
loading its answers match the in-process ``local:`` backend.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Run ``llama_cpp.server`` with extra buffer types off for the whole process."""
    from llama_cpp.server.__main__ import main as server_main

    from robustify.models.local import _import_llama_cpp, without_extra_buffers

    with without_extra_buffers(_import_llama_cpp()):
        server_main()


if __name__ == "__main__":  # pragma: no cover
    main()
