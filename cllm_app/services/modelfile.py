"""The Ollama Modelfile written beside an exported GGUF: the app's chat format as Ollama's
TEMPLATE, its stops, and the sampling settings the model has in the LLM tab.

The template is built from services/chat.py's own pieces (the turn labels, the stop string),
so a change to the app's chat format changes what Ollama is told too.
"""

from cllm_app.engine.bpe import EOT_TEXT
from cllm_app.services.chat import CHAT_STOP, LABELS

# our sampling setting -> Ollama's PARAMETER name
OLLAMA_PARAMETERS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "repetition_penalty": "repeat_penalty",
    "max_new_tokens": "num_predict",
    "seed": "seed",
}


def template() -> str:
    """Ollama's Go template for the app's chat prompt: <|endoftext|> first (as our generator
    starts every document), then `Role: content` turns each ending in a newline, then the
    assistant's cue. Ollama passes a system prompt as a message of role "system"."""
    turns = "".join(
        f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{LABELS[role]}: {{{{ .Content }}}}\n'
        for i, role in enumerate(("system", "user", "assistant"))
    )
    return f'{EOT_TEXT}{{{{ range .Messages }}}}{turns}{{{{ end }}}}{{{{ end }}}}{LABELS["assistant"]}: '


def modelfile(gguf_name: str, sampling: dict, context: int) -> str:
    lines = [f"FROM ./{gguf_name}", f"TEMPLATE {_quoted(template())}"]
    for stop in (EOT_TEXT, *CHAT_STOP):
        lines.append(f"PARAMETER stop {_quoted(stop)}")
    lines.append(f"PARAMETER num_ctx {context}")
    for ours, theirs in OLLAMA_PARAMETERS.items():
        if sampling.get(ours) is not None:
            lines.append(f"PARAMETER {theirs} {sampling[ours]}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """A Modelfile value in quotes. Ollama reads no escapes: a newline is written as itself
    inside the quotes (its parser keeps reading a value until the quote closes), and a value
    holding a double quote goes in triple quotes."""
    return f'"""{text}"""' if '"' in text else f'"{text}"'
