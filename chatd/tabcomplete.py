"""Tab that completes at once, for chatd's prompt_toolkit prompts.

prompt_toolkit's own Tab computes completions in a background task, so keys
typed right after Tab (by a fast typist, a paste, or a test's pipe) are handled
before the completion lands. This binding completes synchronously: a single
match or the common prefix goes in before the next key; several matches with no
common prefix open the menu, and Tab again cycles through it.
"""

from __future__ import annotations

from prompt_toolkit.completion import CompleteEvent, Completer
from prompt_toolkit.completion.base import get_common_complete_suffix
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent


def tab_bindings(completer: Completer) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("tab")
    def _complete(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        if buffer.complete_state:
            buffer.complete_next()
            return
        document = buffer.document
        found = list(completer.get_completions(document, CompleteEvent(completion_requested=True)))
        if len(found) == 1:
            buffer.apply_completion(found[0])
        elif found:
            suffix = get_common_complete_suffix(document, found)
            if suffix:
                buffer.insert_text(suffix)
            else:
                buffer.start_completion(select_first=False)

    return bindings
