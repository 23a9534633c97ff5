"""The LangChain part of ``python -m engine_clients demo``, registered as an ``engine_clients.demo``
entry point."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .chat_models import ChatLlamaCpp
from .chat_models import ChatTGI
from .chat_models import ChatVLLM


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(engine: str, url: str, api_key: str | None) -> None:
    """A streamed chat, a tool call and a structured output through the LangChain chat model."""
    cls: Any = {"tgi": ChatTGI, "vllm": ChatVLLM, "llamacpp": ChatLlamaCpp}[engine]
    model = cls(base_url=url, api_key=api_key, temperature=0, max_tokens=128)
    say(f"LangChain {cls.__name__}: streamed chat")
    for chunk in model.stream("Say hello."):
        print(chunk.content, end="", flush=True)
    print()

    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return f"sunny in {city}"

    say("LangChain tool call (bind_tools, tool_choice='get_weather', strict=True)")
    # strict: engines that constrain tool arguments (vLLM) constrain them to the schema
    message = model.bind_tools([get_weather], tool_choice="get_weather", strict=True).invoke(
        "What's the weather in Paris?"
    )
    for call in message.tool_calls:
        shown = f"{call['name']}({json.dumps(call['args'])})"
        try:
            print(f"   {shown} -> {get_weather(**call['args'])}")
        except TypeError as exc:  # a model may still answer arguments that do not fit: say so, do not crash
            print(f"   {shown} <- not usable: the model's arguments do not fit get_weather ({exc})")
    for bad in message.invalid_tool_calls:
        print(f"   {bad['name']}({bad['args']}) <- not usable: {bad['error']}")

    class City(BaseModel):
        city: str
        population: int

    say("LangChain structured output (with_structured_output)")
    print(f"   {model.with_structured_output(City).invoke('Name a city and its population.')!r}")
