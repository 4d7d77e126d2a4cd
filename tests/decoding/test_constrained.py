"""Constrained decoding: the token index, schema compilers (sampled strings validate), sampling."""

import json
import random

import pytest
import torch

from nlpcurriculum.decoding.constrained import (
    TokenIndex,
    XmlGrammar,
    constrained_sample,
    json_schema_regex,
    token_texts,
    validate_xml,
    xml_grammar_regex,
)
from nlpcurriculum.decoding.regex_automaton import compile_regex
from nlpcurriculum.experiments.beam_search_and_constrained_decoding import NOTE_GRAMMAR, PERSON_SCHEMA
from nlpcurriculum.models.miniformer import build_model, llama_like


def _walk_sample(dfa, rng, max_len=400):
    """A random accepted string (random walk over the DFA, stopping in an accepting state)."""
    out, state = [], dfa.start
    for _ in range(max_len):
        moves = list(dfa.trans[state].items())
        if not moves or (state in dfa.accepting and rng.random() < 0.2):
            break
        sym, state = rng.choice(moves)
        out.append(chr(rng.randint(dfa.bounds[sym], min(dfa.bounds[sym + 1] - 1, dfa.bounds[sym] + 50))))
    assert state in dfa.accepting
    return "".join(out)


def test_index_is_the_brute_force_set():
    dfa = compile_regex(r"\{\"a\":(true|false|[0-9]{1,3})\}")
    alphabet = '{}":atruefls0123x'
    texts = [None, "<eos>"] + sorted({a + b for a in alphabet for b in alphabet} | set(alphabet))
    index = TokenIndex(dfa, texts, eos_id=1)
    for state in range(dfa.n_states):
        ids, nxt = index.allowed(state)
        expected = {i for i, t in enumerate(texts) if t and i != 1 and dfa.walk(state, t) >= 0}
        if state in dfa.accepting:
            expected.add(1)
        assert set(ids.tolist()) == expected
        assert all(nxt[i] == dfa.walk(state, texts[i]) for i in expected if i != 1)
    assert index.states_indexed == dfa.n_states


def test_token_texts_excludes_invalid_utf8_and_specials():
    decode = lambda ids: bytes(ids).decode("utf-8", errors="replace")  # noqa: E731
    texts = token_texts(decode, 256, special_ids=[0])
    assert texts[0] is None and texts[ord("a")] == "a"
    assert all(texts[i] is None for i in range(128, 256))  # lone bytes >= 0x80 are not UTF-8


def test_json_schema_samples_validate():
    import jsonschema

    dfa = compile_regex(json_schema_regex(PERSON_SCHEMA))
    rng = random.Random(0)
    for _ in range(200):
        value = json.loads(_walk_sample(dfa, rng))
        jsonschema.validate(value, PERSON_SCHEMA)
    assert dfa.max_length() is not None


def test_json_schema_optional_and_arrays():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array",
              "items": {"type": "boolean"}, "minItems": 0, "maxItems": 2}}, "required": ["a"]}
    dfa = compile_regex(json_schema_regex(schema))
    for text in ['{"a":1}', '{"a":-3,"b":[]}', '{"a":0,"b":[true,false]}']:
        assert dfa.fullmatch(text), text
    for text in ['{"b":[]}', '{"a":01}', '{"a":1,"b":[true,true,true]}', '{ "a":1}']:
        assert not dfa.fullmatch(text), text


@pytest.mark.parametrize("schema, word", [
    ({"type": "string", "pattern": "x"}, "pattern"),
    ({"type": "null"}, "unsupported schema type"),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["b"]}, "unknown"),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, "optional property"),
    ({"type": "integer", "minimum": 5}, "minimum"),
])
def test_unsupported_schemas_raise(schema, word):
    with pytest.raises(ValueError, match=word):
        json_schema_regex(schema)


def test_xml_samples_validate_and_bad_documents_do_not():
    dfa = compile_regex(xml_grammar_regex(NOTE_GRAMMAR))
    rng = random.Random(1)
    for _ in range(200):
        assert validate_xml(_walk_sample(dfa, rng), NOTE_GRAMMAR) == (True, True)
    assert validate_xml("<note><to>x</to>", NOTE_GRAMMAR) == (False, False)
    assert validate_xml("<note><x>a</x></note>", NOTE_GRAMMAR) == (True, False)
    assert validate_xml("<note>text</note>", NOTE_GRAMMAR) == (True, False)
    with pytest.raises(ValueError, match="root"):
        XmlGrammar(root="x", elements={"a": "text"})


def test_constrained_sampling_always_matches():
    torch.manual_seed(0)
    vocab = [None] + [chr(c) for c in range(ord("0"), ord("9") + 1)] + ["-", "12", "20", "ab", "x-"]
    eos = len(vocab)
    vocab.append(None)
    model = build_model(llama_like("tiny", vocab_size=len(vocab), max_seq_len=64)).eval()
    dfa = compile_regex(r"(19|20)\d\d-(0[1-9]|1[0-2])")
    index = TokenIndex(dfa, vocab, eos)
    gen = torch.Generator().manual_seed(0)
    out = constrained_sample(model, [1, 2, 3], 16, dfa.max_length() + 1, eos, index, 1.5, gen)
    assert all(out.ended)
    for ids in out.ids:
        assert dfa.fullmatch("".join(vocab[i] for i in ids))
    base = constrained_sample(model, [1, 2, 3], 16, 8, eos, None, 1.5, gen)
    assert base.rows == 16 and base.steps >= 1
    with pytest.raises(ValueError, match="temperature"):
        constrained_sample(model, [1], 2, 3, eos, index, 0.0)
