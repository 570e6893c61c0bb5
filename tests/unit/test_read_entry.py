"""read_entry: an apology, then the entry prompt; keys typed during the apology are kept."""

from __future__ import annotations

from scripted_channel import ScriptedChannel

from core.channel import ALL_KEYS, read_entry


async def test_without_an_apology_it_is_one_get_data():
    channel = ScriptedChannel(["123"])
    assert await read_entry(channel, "enter", 6.0, 20) == "123"
    assert channel.calls == [("read", "enter", 6.0, 20)]


async def test_an_apology_heard_to_its_end_then_the_prompt_reads_the_entry():
    channel = ScriptedChannel([None, "123"])
    assert await read_entry(channel, "enter", 6.0, 20, apology="sorry") == "123"
    assert channel.calls == [("play", "sorry", ALL_KEYS), ("read", "enter", 6.0, 20)]


async def test_keys_typed_during_the_apology_start_the_entry_and_end_at_hash():
    channel = ScriptedChannel(["2", "9", "0", "#"])
    assert await read_entry(channel, "enter", 6.0, 20, apology="sorry") == "290"
    assert channel.calls == [("play", "sorry", ALL_KEYS), ("wait", 6.0), ("wait", 6.0), ("wait", 6.0)]
    assert "enter" not in channel.prompts   # the caller already knows what to type


async def test_keys_typed_during_the_apology_end_at_silence():
    channel = ScriptedChannel(["4", "2", None])
    assert await read_entry(channel, "enter", 5.0, 20, apology="sorry") == "42"
    assert channel.remaining == 0


async def test_keys_typed_during_the_apology_end_at_the_maximum():
    channel = ScriptedChannel(["1", "2", "3"])
    assert await read_entry(channel, "enter", 6.0, 3, apology="sorry") == "123"
    assert channel.remaining == 0   # no fourth key is waited for


async def test_star_is_kept_and_hash_alone_is_an_empty_entry():
    assert await read_entry(ScriptedChannel(["*", "1", "#"]), "enter", 6.0, 20, apology="sorry") == "*1"
    assert await read_entry(ScriptedChannel(["#"]), "enter", 6.0, 20, apology="sorry") is None
