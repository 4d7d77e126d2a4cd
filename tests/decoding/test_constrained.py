"""Constrained decoding: the token index, schema compilers (sampled strings validate), sampling."""

import json
import random

import pytest
import torch

from nlpcurriculum.decoding.constrained import (
    SchemaError,
    TokenIndex,
    XmlGrammar,
    common_string,
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


# --- JSON Schema features: every sample validates, every violation is refused ------------------

POINT = {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
         "required": ["x"], "additionalProperties": False}
TREE = {"$defs": {"node": {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 4},
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["name"]}},
        "$ref": "#/$defs/node"}  # fmt: skip

# name -> (schema, strings that violate it: each must be refused by the automaton)
FEATURES = {
    "type_union": ({"type": ["string", "null"], "maxLength": 5}, ['"abcdef"', "1", "nul", "[]"]),
    "type_union_numbers": ({"type": ["integer", "boolean", "null"], "minimum": 0}, ["-1", '"1"', "1.5"]),
    "anyOf": ({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": 0}, {"type": "null"}]},
              ['"abcd"', "-1", "true"]),
    "anyOf_pydantic_optional": ({"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Nick"},
                                ["0", "false"]),
    "oneOf": ({"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]},
        {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "boolean"}}, "required": ["kind", "y"]},
    ]}, ['{"kind":"a","y":true}', '{"kind":"c","x":1}', '{"kind":"b"}']),
    "ref_defs": ({"$defs": {"point": POINT}, "type": "object",
                  "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}},
                  "required": ["a", "b"]},
                 ['{"a":{"x":1}}', '{"a":{"x":1},"b":{"y":2}}', '{"a":{"x":1},"b":{"x":"1"}}']),
    "ref_definitions": ({"definitions": {"tag": {"enum": ["x", "y"]}}, "type": "array",
                         "items": {"$ref": "#/definitions/tag"}, "maxItems": 3}, ['["z"]', '["x","x","x","x"]']),
    "ref_recursive": (TREE, ['{"children":[]}', '{"name":""}', '{"name":"a","children":[{"name":"toolong"}]}']),
    "minLength_without_maxLength": ({"type": "string", "minLength": 40}, ['"' + "a" * 39 + '"', '""']),
    "minLength_maxLength": ({"type": "string", "minLength": 2, "maxLength": 30}, ['"a"', '"' + "a" * 31 + '"']),
    "minItems_above_default_cap": ({"type": "array", "items": {"type": "integer"}, "minItems": 6},
                                   ["[1,2,3,4,5]", "[]"]),
    "minItems_maxItems": ({"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
                          ["[]", "[true,true,true]"]),
    "pattern_anchored": ({"type": "string", "pattern": r"^[A-Z]{2}-\d{3}$"}, ['"AB-12"', '"ab-123"', '"xAB-123"']),
    "pattern_unanchored": ({"type": "string", "pattern": "ab+c"}, ['"ac"', '"abd"']),
    "const": ({"const": {"v": [1, "x", None, True]}}, ['{"v":[1,"x",null,false]}', '{"v":[1,"x",null]}']),
    "enum_any_json": ({"enum": ["red", 3, 2.5, None, False, [1, 2], {"k": "v"}, 'quo"te']},
                      ['"blue"', "[2,1]", "true", '{"k":"w"}']),
    "enum_filtered_by_type": ({"type": "string", "enum": ["a", 1, "b"]}, ["1", '"c"']),
}


def _validator(schema):
    import jsonschema

    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", FEATURES)
def test_json_schema_feature_samples_match_and_validate(name):
    import re

    schema, _ = FEATURES[name]
    pattern = json_schema_regex(schema)
    dfa = compile_regex(pattern)
    validator = _validator(schema)
    rng = random.Random(name)
    samples = {_walk_sample(dfa, rng) for _ in range(150)}
    for text in samples:
        assert dfa.fullmatch(text) and re.fullmatch(pattern, text), text
        errors = [e.message for e in validator.iter_errors(json.loads(text))]
        assert not errors, (text, errors)
    assert len(samples) > 1 or name == "const"


@pytest.mark.parametrize("name", FEATURES)
def test_json_schema_feature_violations_are_refused(name):
    schema, bad = FEATURES[name]
    dfa = compile_regex(json_schema_regex(schema))
    validator = _validator(schema)
    for text in bad:
        try:
            value = json.loads(text)
        except ValueError:
            pass
        else:
            assert not validator.is_valid(value), f"{text} is valid: not a violation"
        assert not dfa.fullmatch(text), text


def test_json_schema_features_reach_every_alternative():
    rng = random.Random(0)

    def kinds(schema, n=200):
        dfa = compile_regex(json_schema_regex(schema))
        return {type(json.loads(_walk_sample(dfa, rng))).__name__ for _ in range(n)}

    assert kinds(FEATURES["type_union"][0]) == {"str", "NoneType"}
    assert kinds(FEATURES["anyOf"][0]) == {"str", "int", "NoneType"}
    # max_ref_depth=3: three levels of nodes; the third may only have an empty list of children
    three = '{"name":"a","children":[{"name":"b","children":[{"name":"c","children":[]}]}]}'
    four = '{"name":"a","children":[{"name":"b","children":[{"name":"c","children":[{"name":"d"}]}]}]}'
    dfa = compile_regex(json_schema_regex(TREE))
    assert dfa.fullmatch(three) and not dfa.fullmatch(four)
    assert compile_regex(json_schema_regex(TREE, max_ref_depth=4)).fullmatch(four)
    assert _validator(TREE).is_valid(json.loads(four))  # refused by the automaton, but valid: a bound
    assert json_schema_regex({"type": "string", "minLength": 40}) == '"[a-zA-Z0-9 _.,\\-]{40,40}"'
    assert json_schema_regex({"type": "string"}, max_string_length=50) == '"[a-zA-Z0-9 _.,\\-]{0,50}"'
    assert json_schema_regex({"type": "string", "maxLength": 200}) == '"[a-zA-Z0-9 _.,\\-]{0,200}"'


def test_person_schema_regex_is_unchanged():
    # The beam_search stage's constraint: its language (and DFA size metric) must not move.
    assert json_schema_regex(PERSON_SCHEMA) == (
        r'\{"name":"[a-zA-Z0-9 _.,\-]{1,12}","age":(0|[1-9][0-9]{0,5}),"score":-?(0|[1-9][0-9]{0,5})'
        r'(\.[0-9]{1,3})?,"active":(true|false),"role":("admin"|"user"|"guest"),"tags":\["[a-zA-Z0-9 _.,\-]'
        r'{0,8}"(,"[a-zA-Z0-9 _.,\-]{0,8}"){0,2}\],"address":\{"city":"[a-zA-Z0-9 _.,\-]{1,10}","zip":'
        r'(0|[1-9][0-9]{0,5})\}\}'
    )


UNSUPPORTED = [
    ({"type": "string", "format": "email"}, "$: unsupported keyword(s) ['format']"),
    ({"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}}, "required": ["n"]},
     "$.n: unsupported keyword(s) ['maximum']"),
    ({"allOf": [{"type": "string"}]}, "$: unsupported keyword(s) ['allOf']"),
    ({"not": {"type": "null"}}, "$: unsupported keyword(s) ['not']"),
    ({"if": {"type": "string"}, "then": {"type": "string"}}, "$: unsupported keyword(s) ['if', 'then']"),
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "$: unsupported keyword(s) ['uniqueItems']"),
    ({"type": "array", "prefixItems": [{"type": "integer"}]}, "$: unsupported keyword(s) ['prefixItems']"),
    ({"type": "object", "patternProperties": {"^x": {"type": "string"}}},
     "$: unsupported keyword(s) ['patternProperties']"),
    ({"type": "number", "multipleOf": 0.5}, "$: unsupported keyword(s) ['multipleOf']"),
    ({"type": "integer", "exclusiveMinimum": 0}, "$: unsupported keyword(s) ['exclusiveMinimum']"),
    ({"type": "integer", "minimum": 5}, "$: only minimum 0 is supported, got 5"),
    ({"type": ["string", "null"], "minimum": 0}, "$: unsupported keyword(s) ['minimum'] for type ['string', 'null']"),
    ({"type": "date"}, "$: unsupported type(s) ['date']"),
    ({"$ref": "https://example.com/s.json"}, "$: $ref 'https://example.com/s.json' is not local"),
    ({"$ref": "#/$defs/missing", "$defs": {}}, "$: $ref '#/$defs/missing' not found"),
    ({"$ref": "#/$defs/a", "maxLength": 3, "$defs": {"a": {"type": "string"}}},
     "$: unsupported keyword(s) ['maxLength'] for $ref (only annotations may sit beside it)"),
    ({"type": "object", "anyOf": [{"type": "object"}]},
     "$: unsupported keyword(s) ['type'] for anyOf (only annotations may sit beside it)"),
    ({"oneOf": [{"type": "string", "maxLength": 3}, {"type": "string", "minLength": 2, "maxLength": 5}]},
     "$.oneOf: branches 0 and 1 both match"),
    ({"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}},
      "$ref": "#/$defs/n"}, "$: recursive $ref ['#/$defs/n'] is required at every level"),
    ({"type": "string", "pattern": "(?=a)b"}, "$: pattern '(?=a)b' uses syntax our regex engine does not support"),
    ({"type": "string", "pattern": r"\bword"}, "$: pattern '\\\\bword' uses syntax our regex engine does not support: "
     "unknown escape \\b"),
    ({"type": "string", "pattern": "^a|b$"}, "$: pattern '^a|b$': an anchor beside a top-level '|'"),
    ({"type": "string", "pattern": '^"$'}, "$: pattern '^\"$' matches no string"),
    ({"type": "string", "pattern": "^a+$", "maxLength": 4}, "$: pattern together with minLength/maxLength"),
    ({"type": "string", "minLength": 5, "maxLength": 2}, "$: need minLength <= maxLength, got 5 > 2"),
    ({"type": "string", "maxLength": 5000}, "$: maxLength 5000 is above 1000"),
    ({"type": "array"}, "$: an array needs 'items'"),
    ({"enum": ["a", "b"], "maxLength": 1}, "$: unsupported keyword(s) ['maxLength'] for enum"),
    ({"type": "integer", "enum": ["a", "b"]}, "$: no enum value has type 'integer'"),
    ({"description": "no type"}, "$: no 'type', 'enum', 'const', 'anyOf', 'oneOf' or '$ref'"),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, "$.a: an optional property must follow"),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["b"]},
     "$: required names unknown properties ['b']"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
      "additionalProperties": {"type": "string"}}, "$: additionalProperties must be false"),
    ({"type": "array", "items": True}, "$[]: boolean schema true is not supported"),
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "object", "required": ["b"],
      "properties": {"b": {"type": "string", "pattern": "(?i)x"}}}}}, "$.a.b: pattern '(?i)x'"),
    ({"anyOf": [{"type": "string"}, {"$ref": "#/$defs/x"}], "$defs": {"x": {"type": "integer", "maximum": 3}}},
     "$.anyOf[1]->#/$defs/x: unsupported keyword(s) ['maximum']"),
]


@pytest.mark.parametrize("schema, message", UNSUPPORTED)
def test_unsupported_schemas_name_the_keyword_and_path(schema, message):
    with pytest.raises(SchemaError) as info:
        json_schema_regex(schema)
    assert str(info.value).startswith(message), str(info.value)
    assert isinstance(info.value, ValueError)


def test_the_issue_examples_compile():
    # issue 18: these crashed (TypeError) or were refused ("unsupported schema type None", maxLength 16).
    for schema in ({"type": ["string", "null"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                   {"$ref": "#/$defs/a", "$defs": {"a": {"type": "string"}}}, {"type": "string", "minLength": 40}):
        assert compile_regex(json_schema_regex(schema)).start == 0


def test_common_string_finds_overlaps_and_disjoint_languages():
    assert common_string(compile_regex("a[0-9]+"), compile_regex("[a-c]7")) == "a7"
    assert common_string(compile_regex("ab*"), compile_regex("b+")) is None
    assert common_string(compile_regex("x|yz"), compile_regex("(y|x)z?")) == "x"


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
