"""Talking to a model: conversations kept per model, the chat prompt template, sampling
presets, and the streams behind the LLM tab's Chat and Completion views.

The chat template, for a plain language model that was never taught to chat:

    System: <system text>          (only when a client sends a system message)
    User: <message>
    Assistant: <reply>
    User: <message>
    Assistant:

Turns are joined with a newline and the prompt ends with "Assistant: ". The reply stops at
the model's <|endoftext|>, at "\\nUser:" (the model starting the person's next turn), or at
max_new_tokens. When the conversation is longer than the model's context (block_size, less
room for the reply), whole turns are dropped from the oldest on; a single turn too long on
its own keeps its last tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

from cllm_app.engine.generate import Sampling
from cllm_app.errors import InvalidInput, NotFound
from cllm_app.services import settings
from cllm_app.services.sampling import DEFAULT_PRESET, PRESETS, SAMPLING_LIMITS, check_sampling
from cllm_app.services.streams import Handle, Streams, TextStream, check_stop
from cllm_app.store import Conversation, Message, db
from cllm_app.store.schema import iso, utcnow

ROLES = ("system", "user", "assistant")
LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
CHAT_STOP = ["\nUser:"]
DEFAULT_TITLE = "New conversation"
MAX_TITLE = 200
MAX_MESSAGE = 100_000  # characters; far beyond any context this app trains


# ---- the template ---------------------------------------------------------------------------


def render_turn(role: str, content: str) -> str:
    return f"{LABELS[role]}: {content}\n"


def build_prompt(tokenizer, turns: list[tuple[str, str]], block_size: int, max_new_tokens: int) -> list[int]:
    """Token ids of the chat prompt for `turns` [(role, content)], fitted to the context.

    The budget keeps room for the reply (up to a quarter of the context) and for the
    <|endoftext|> the generator puts first."""
    reserve = min(max_new_tokens, max(1, block_size // 4))
    budget = max(1, block_size - 1 - reserve)
    cue = list(tokenizer.encode(f"{LABELS['assistant']}: "))
    encoded = [list(tokenizer.encode(render_turn(role, content))) for role, content in turns]
    system = encoded[0] if turns and turns[0][0] == "system" else None
    rest = encoded[1:] if system is not None else encoded
    kept: list[list[int]] = []
    used = len(cue)
    for ids in reversed(rest):
        if used + len(ids) > budget:
            break
        kept.insert(0, ids)
        used += len(ids)
    if system is not None and used + len(system) <= budget:
        kept.insert(0, system)
        used += len(system)
    if not kept and rest:
        # Not even the last turn fits: keep its end, which is what the reply follows.
        last = rest[-1]
        kept = [last[len(last) - max(0, budget - len(cue)):]] if budget > len(cue) else []
    ids = [t for turn in kept for t in turn] + cue
    return [int(t) for t in ids[-budget:]]


# ---- conversations --------------------------------------------------------------------------


def _title(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("a conversation's title must be some text", code="invalid_title")
    value = " ".join(value.split())
    if len(value) > MAX_TITLE:
        raise InvalidInput(f"a conversation's title can be at most {MAX_TITLE} characters", code="invalid_title")
    return value


def _content(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("write something first: the message is empty", code="empty_message")
    if len(value) > MAX_MESSAGE:
        raise InvalidInput(f"a message can be at most {MAX_MESSAGE:,} characters", code="message_too_long")
    return value


def describe_message(m: Message) -> dict:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "role": m.role,
        "content": m.content,
        "sampling": json.loads(m.sampling) if m.sampling else None,
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "tokens_per_sec": m.tokens_per_sec,
        "finish_reason": m.finish_reason,
        "created_at": iso(m.created_at, "milliseconds"),
    }


def describe(c: Conversation, messages: bool = False) -> dict:
    out = {
        "id": c.id,
        "model_name": c.model.model_name,
        "title": c.title,
        "created_at": iso(c.created_at, "milliseconds"),
        "updated_at": iso(c.updated_at, "milliseconds"),
        "message_count": c.messages.count(),
    }
    if messages:
        out["messages"] = [describe_message(m) for m in c.messages.order_by(Message.id)]
    return out


class Chat:
    """Conversations of live models, and generation from them."""

    def __init__(self, models, streams: Streams):
        self.models = models
        self.streams = streams

    def get(self, conversation_id) -> Conversation:
        c = None
        if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
            c = Conversation.get_or_none(Conversation.id == conversation_id)
        if c is None or c.model.deleted_at is not None:
            raise NotFound(f"there is no conversation #{conversation_id}", code="conversation_not_found")
        return c

    def list(self, model_name: str) -> dict:
        row = self.models.get(model_name)
        rows = row.conversations.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        return {"model_name": row.model_name, "conversations": [describe(c) for c in rows]}

    def create(self, model_name: str, title=None) -> dict:
        row = self.models.get(model_name)
        c = Conversation.create(model=row, title=DEFAULT_TITLE if title is None else _title(title))
        return describe(c, messages=True)

    def show(self, conversation_id) -> dict:
        return describe(self.get(conversation_id), messages=True)

    def rename(self, conversation_id, title) -> dict:
        c = self.get(conversation_id)
        c.title, c.updated_at = _title(title), utcnow()
        c.save()
        return describe(c, messages=True)

    def delete(self, conversation_id) -> dict:
        c = self.get(conversation_id)
        out = describe(c)
        c.delete_instance()  # messages go with it (ON DELETE CASCADE)
        return out

    # ---- sampling settings, remembered per model (by id, so a rename keeps them) -------------

    def sampling_settings(self, model_name: str) -> dict:
        row = self.models.get(model_name)
        saved = settings.get(f"llm_sampling:{row.id}")
        if not saved:
            return {"model_name": row.model_name, "preset": DEFAULT_PRESET, "sampling": dict(PRESETS[DEFAULT_PRESET])}
        return {"model_name": row.model_name, **saved}

    def save_sampling_settings(self, model_name: str, preset, sampling) -> dict:
        row = self.models.get(model_name)
        if preset not in (*PRESETS, "Custom"):
            raise InvalidInput(f"preset must be one of: {', '.join([*PRESETS, 'Custom'])}", code="invalid_preset")
        if not isinstance(sampling, dict):
            raise InvalidInput("sampling must be an object of sampling settings", code="invalid_sampling")
        values = sampling_dict(check_sampling(sampling))
        settings.put(f"llm_sampling:{row.id}", {"preset": preset, "sampling": values})
        return self.sampling_settings(model_name)

    # ---- generating ---------------------------------------------------------------------------

    def start_reply(self, conversation_id, content, sampling, regenerate: bool = False) -> ChatReply:
        """Check everything, save the person's message (or drop the last reply to regenerate)
        and take a stream slot; the returned reply streams the assistant's answer."""
        c = self.get(conversation_id)
        s = check_sampling(sampling or {})
        if regenerate:
            if content is not None:
                raise InvalidInput("regenerate takes no content: it answers the last message again", code="unknown_field")
        else:
            content = _content(content)
        row, loaded = self.streams.load(c.model.model_name)
        handle = self.streams.open(row.id)
        try:
            with db.atomic():
                last = c.messages.order_by(Message.id.desc()).first()
                user_message = None
                if regenerate:
                    if last is not None and last.role == "assistant":
                        last.delete_instance()
                    last = c.messages.order_by(Message.id.desc()).first()
                    if last is None or last.role != "user":
                        raise InvalidInput("there is no message to answer again yet", code="nothing_to_regenerate")
                else:
                    user_message = Message.create(conversation=c, role="user", content=content)
                    if c.title == DEFAULT_TITLE and not c.messages.where(Message.id != user_message.id).exists():
                        # from the text, not the spaces before it (60 of them left no title at all)
                        c.title = _title(content.strip()[:60])
                c.updated_at = utcnow()
                c.save()
            turns = [(m.role, m.content) for m in c.messages.order_by(Message.id)]
            prompt = build_prompt(loaded.generator.tok, turns, loaded.generator.context, s.max_new_tokens)
        except BaseException:
            self.streams.close(handle)
            raise
        stream = TextStream(loaded.generator, prompt, s, CHAT_STOP, handle.stopped, strip_leading=True)
        return ChatReply(self, c, handle, stream, s, user_message)

    def start_completion(self, model_name: str, prompt, sampling, stop=None) -> Reply:
        """A plain continuation of `prompt` (the Completion view)."""
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInput("write a prompt first: the prompt is empty", code="empty_prompt")
        if len(prompt) > MAX_MESSAGE:
            raise InvalidInput(f"a prompt can be at most {MAX_MESSAGE:,} characters", code="prompt_too_long")
        s = check_sampling(sampling or {})
        stops = check_stop(stop)
        row, loaded = self.streams.load(model_name)
        handle = self.streams.open(row.id)
        ids = [int(t) for t in loaded.generator.tok.encode(prompt)]
        stream = TextStream(loaded.generator, ids, s, stops, handle.stopped)
        return Reply(self.streams, handle, stream, s)

    def start_turns(self, model_name: str, turns: list[tuple[str, str]], sampling, stop=None) -> Reply:
        """A reply to turns given whole by the caller (the OpenAI chat API): nothing is stored."""
        s = check_sampling(sampling or {})
        stops = CHAT_STOP + check_stop(stop)
        if not turns:
            raise InvalidInput("messages must hold at least one message", code="invalid_messages")
        row, loaded = self.streams.load(model_name)
        prompt = build_prompt(loaded.generator.tok, turns, loaded.generator.context, s.max_new_tokens)
        handle = self.streams.open(row.id)
        stream = TextStream(loaded.generator, prompt, s, stops, handle.stopped, strip_leading=True)
        return Reply(self.streams, handle, stream, s)


def sampling_dict(s: Sampling) -> dict:
    return {k: v for k, v in asdict(s).items() if k in SAMPLING_LIMITS}


class Reply:
    """A stream in progress: iterate `pieces()`; `finish()` returns the stats; the slot is freed
    either way (also when the client goes away mid-stream)."""

    def __init__(self, streams: Streams, handle: Handle, stream: TextStream, sampling: Sampling):
        self.streams, self.handle, self.stream, self.sampling = streams, handle, stream, sampling
        self.stream_id = handle.stream_id

    def start_info(self) -> dict:
        return {"stream_id": self.stream_id, "prompt_tokens": self.stream.stats.prompt_tokens}

    def pieces(self) -> Iterator[str]:
        try:
            yield from self.stream
        finally:
            self.streams.close(self.handle)
            self.finished()

    def finished(self) -> None:
        """Called once the stream has ended, however it ended."""

    def result(self) -> dict:
        return self.stream.stats.as_dict()


class ChatReply(Reply):
    """A chat reply: saved as the conversation's next message when it ends, even when stopped
    part way, so Stop keeps what was said."""

    def __init__(self, chat: Chat, conversation: Conversation, handle, stream, sampling, user_message):
        super().__init__(chat.streams, handle, stream, sampling)
        self.conversation = conversation
        self.user_message = user_message
        self.message: Message | None = None

    def start_info(self) -> dict:
        out = super().start_info()
        out["conversation_id"] = self.conversation.id
        out["user_message"] = describe_message(self.user_message) if self.user_message else None
        return out

    def finished(self) -> None:
        st = self.stream.stats
        try:
            with db.atomic():
                if Conversation.get_or_none(Conversation.id == self.conversation.id) is None:
                    return  # deleted while it was answering
                self.message = Message.create(
                    conversation=self.conversation,
                    role="assistant",
                    content=self.stream.text,
                    sampling=json.dumps(sampling_dict(self.sampling)),
                    prompt_tokens=st.prompt_tokens,
                    completion_tokens=st.completion_tokens,
                    tokens_per_sec=st.tokens_per_sec,
                    finish_reason=st.finish_reason,
                )
                Conversation.update(updated_at=utcnow()).where(Conversation.id == self.conversation.id).execute()
        except Exception:  # the model was emptied from the trash meanwhile: nothing to keep
            self.message = None

    def result(self) -> dict:
        out = super().result()
        out["message"] = describe_message(self.message) if self.message else None
        return out
