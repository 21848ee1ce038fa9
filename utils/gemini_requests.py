"""What a request asks Gemini for besides its contents: the system instruction, an
output limit, structured output, the `/ai safety` level, the tools. The provider
(`utils.gemini`) sends it with every call.
"""

from __future__ import annotations

from google.genai import types

# `/ai safety` levels: block content from this harm probability up, in four categories.
SAFETY_LEVELS: dict[str, types.HarmBlockThreshold] = {
    "low": types.HarmBlockThreshold.BLOCK_LOW_AND_ABOVE,
    "medium": types.HarmBlockThreshold.BLOCK_MEDIUM_AND_ABOVE,
    "high": types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
    "off": types.HarmBlockThreshold.OFF,
}
SAFETY_CATEGORIES = (
    types.HarmCategory.HARM_CATEGORY_HARASSMENT,
    types.HarmCategory.HARM_CATEGORY_HATE_SPEECH,
    types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT,
    types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
)


def request_config(
    system: str | None,
    safety: str | None,
    schema: types.SchemaDict | None = None,
    *,
    tools: list[types.ToolDict] | None = None,
    tool_mode: types.FunctionCallingConfigMode = types.FunctionCallingConfigMode.AUTO,
    max_output_tokens: int | None = None,
) -> types.GenerateContentConfigDict | None:
    """The config of a request: the system instruction, an output limit, a JSON schema
    for structured output, the `/ai safety` level's thresholds, and the tools (whose
    calls the bot runs itself). None when there is nothing to set."""
    config: types.GenerateContentConfigDict = {}
    if system:
        config["system_instruction"] = system
    if max_output_tokens is not None:
        config["max_output_tokens"] = max_output_tokens
    if schema is not None:  # structured output: the reply is JSON text of that shape
        config["response_mime_type"] = "application/json"
        config["response_schema"] = schema
    if safety in SAFETY_LEVELS:
        threshold = SAFETY_LEVELS[safety]
        config["safety_settings"] = [
            {"category": category, "threshold": threshold} for category in SAFETY_CATEGORIES
        ]
    if tools:
        config["tools"] = tools
        # The bot runs the calls itself: it checks permissions, bounds time and streams.
        config["automatic_function_calling"] = {"disable": True}
        if any("function_declarations" in tool for tool in tools):
            config["tool_config"] = {"function_calling_config": {"mode": tool_mode}}
    return config or None
