"""Prompt matrices: a base prompt with terms switched on and off, stored as an experiment.

Up to FULL_UP_TO terms every one of the 2^k combinations is a variant. Past that a regular
two-level fractional factorial in 16 runs (2^(k-p), the basic terms A-D and the generators in
GENERATORS, signs chosen so that the base prompt alone is one of the runs) keeps every main
effect estimable; which interactions each main effect is confounded with is computed from the
defining relation and shown. `pairs_only` makes the base plus each term alone (one-at-a-time).

A matrix is an ordinary experiment; what makes it one is the record under the experiment's
params, `matrix`: the terms, the design and, per variant label, its 0/1 term indicators. (The
variants' own params column holds only generation overrides, so the record lives beside the X/Y
plots' `xy` record instead; no migration.)
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from ..errors import BadParameter, PromptkitError
from ..library import Library
from ..params import GenerationParams
from .runs import create_experiment
from .variants import VariantSpec

FULL_UP_TO = 4
MAX_TERMS = 15
LETTERS = "ABCDEFGHJKLMNOP"  # I is left out: it names the identity in a defining relation
TEXT_FIELDS = ("subject", "action", "environment")
LIST_FIELDS = ("style", "quality", "negative")
# 16-run designs: the generators of the columns after A-D, by number of terms (minimum aberration
# for 5-8 terms, as in the table of selected 2^(k-p) designs in Montgomery, "Design and Analysis
# of Experiments"; saturated resolution III past 8).
GENERATORS = ["ABCD", "ABC", "BCD", "ACD", "ABD", "AB", "AC", "AD", "BC", "BD", "CD"]
DESIGN_GENERATORS = {5: ["ABCD"], 6: ["ABC", "BCD"], 7: ["ABC", "BCD", "ACD"], 8: ["BCD", "ACD", "ABC", "ABD"]}
_ROMAN = {3: "III", 4: "IV", 5: "V"}
_FIELD_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$", re.S)


def split_field(text: str) -> tuple[str | None, str]:
    """`FIELD=TEXT` as (FIELD, TEXT); text without a field as (None, text), stripped."""
    match = _FIELD_RE.match(text or "")
    return (match.group(1), match.group(2).strip()) if match else (None, (text or "").strip())


def parse_term(text: str, known_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """`golden hour` (added at the end of the prompt) or `FIELD=TEXT` (added to that template field)."""
    field, value = split_field(text)
    if field is not None and field not in (*TEXT_FIELDS, *LIST_FIELDS, *known_fields):
        raise BadParameter(f"--term {text!r}: no field {field!r}; use one of "
                           f"{', '.join((*TEXT_FIELDS, *LIST_FIELDS, *known_fields))}, or leave the field out")
    if not value or len(value) > 200 or any(c in value for c in "\n\r"):
        raise BadParameter(f"--term {text!r}: a term is 1-200 characters on one line")
    return {"field": field, "text": value}


def term_name(term: dict[str, Any]) -> str:
    return f"{term['field']}={term['text']}" if term["field"] else term["text"]


def _word_bits(word: str) -> frozenset[str]:
    return frozenset(word)


def fractional_design(k: int) -> dict[str, Any]:
    """The 16-run 2^(k-p) design for 5 <= k <= MAX_TERMS terms: runs, generators, resolution, aliases."""
    generators = DESIGN_GENERATORS.get(k) or (DESIGN_GENERATORS[8] + [w for w in GENERATORS if w not in
                                                                       DESIGN_GENERATORS[8]])[:k - 4]
    letters = LETTERS[:k]
    # In ±1 coding (off = -1) the base run has every basic column at -1; a word of length w
    # multiplies to (-1)^w there, so sign (-1)^(w+1) makes the generated term off too.
    signs = [(-1) ** (len(w) + 1) for w in generators]
    runs = []
    for basic in itertools.product((-1, 1), repeat=4):
        row = list(basic)
        for word, sign in zip(generators, signs):
            value = sign
            for letter in word:
                value *= basic[LETTERS.index(letter)]
            row.append(value)
        runs.append([1 if v > 0 else 0 for v in row])
    words = [_word_bits(w) | {letters[4 + i]} for i, w in enumerate(generators)]
    group = set()
    for r in range(1, len(words) + 1):
        for combo in itertools.combinations(words, r):
            acc: frozenset[str] = frozenset()
            for w in combo:
                acc = acc ^ w
            group.add(acc)
    resolution = min(len(w) for w in group)
    aliases = {}
    for letter in letters:
        short = sorted({"".join(sorted(w ^ {letter})) for w in group if len(w ^ {letter}) <= 2},
                       key=lambda s: (len(s), s))
        aliases[letter] = short
    texts = [f"{letters[4 + i]} = {'−' if s < 0 else ''}{w}" for i, (w, s) in enumerate(zip(generators, signs))]
    return {"kind": "fractional", "runs": runs, "generators": texts, "resolution": _ROMAN.get(resolution, str(resolution)),
            "defining_relation": sorted("".join(sorted(w)) for w in group), "aliases": aliases}


def matrix_design(k: int, pairs_only: bool = False) -> dict[str, Any]:
    """The design for K terms: `full` (2^k runs, k <= FULL_UP_TO), `fractional` or `pairs` (base + each term)."""
    if k < 1:
        raise BadParameter("a matrix needs at least one --term")
    if k > MAX_TERMS:
        raise BadParameter(f"a matrix takes at most {MAX_TERMS} --term options; got {k}")
    if pairs_only:
        runs = [[0] * k] + [[int(i == j) for i in range(k)] for j in range(k)]
        design = {"kind": "pairs", "runs": runs}
    elif k <= FULL_UP_TO:
        design = {"kind": "full", "runs": [list(bits) for bits in itertools.product((0, 1), repeat=k)]}
    else:
        design = fractional_design(k)
    design["runs"].sort(key=lambda bits: (sum(bits), [-b for b in bits]))
    design["text"] = design_text(design, k)
    return design


def design_text(design: dict[str, Any], k: int) -> str:
    """One paragraph: which design, and what it confounds."""
    runs = len(design["runs"])
    if design["kind"] == "pairs":
        return (f"one term at a time: the base and each of the {k} terms alone ({runs} variants); "
                "each term's effect is measured against the base only, interactions are not seen")
    if design["kind"] == "full":
        return f"full factorial 2^{k}: all {runs} combinations; every main effect and interaction is estimable"
    res = design["resolution"]
    confounded = "; ".join(f"{m} = {' = '.join(a)}" for m, a in design["aliases"].items() if a)
    kind = {"III": "main effects are confounded with two-term interactions",
            "IV": "main effects are clear of two-term interactions; two-term interactions are confounded "
                  "with each other",
            "V": "main effects and two-term interactions are clear of each other"}.get(res, "")
    return (f"fractional factorial 2^({k}-{k - 4}) resolution {res}, {runs} variants, generators "
            f"{', '.join(design['generators'])}: {kind}" + (f" ({confounded})" if confounded else "")
            + "; effects are estimated assuming those interactions are negligible")


def variant_label(bits: list[int]) -> str:
    return "+".join(LETTERS[i] for i, b in enumerate(bits) if b) or "base"


def _apply_terms(fields: dict[str, Any], terms: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """FIELDS with the named terms added; returns them and the unnamed terms (added after the template)."""
    fields = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in fields.items()}
    loose = []
    for term in terms:
        name, text = term["field"], term["text"]
        if name is None:
            loose.append(text)
        elif name in LIST_FIELDS:
            fields[name] = [*fields.get(name, []), text]
        elif name in TEXT_FIELDS:
            fields[name] = f"{fields[name]}, {text}" if fields.get(name) else text
        else:
            extras = fields.setdefault("extras", {})
            extras[name] = f"{extras[name]}, {text}" if extras.get(name) else text
    return fields, loose


def render_variant(builder, base: dict[str, Any], terms: list[dict[str, Any]]):
    """The base prompt with TERMS added, as a `templates.Prompt` (named terms through the template)."""
    from ..templates import Fields, Prompt, normalise_terms

    if base.get("fields") is None or not base.get("template"):
        if any(t["field"] for t in terms):
            raise BadParameter(f"--term {term_name(next(t for t in terms if t['field']))!r}: prompt "
                               f"{base['id']} was not built from fields; give the term without a field")
        positive, _ = normalise_terms(", ".join([base["positive"], *(t["text"] for t in terms)]))
        return Prompt(base.get("template") or "", base.get("template_digest") or "", Fields(), positive,
                      base["negative"], [])
    fields, loose = _apply_terms(base["fields"], terms)
    prompt = builder.render(Fields.from_dict(fields), base["template"])
    if loose:
        prompt.positive, _ = normalise_terms(", ".join([prompt.positive, *loose]))
    return prompt


def expand_terms(term_texts: list[str], wildcards: str | None = None) -> list[str]:
    """Each --term, with a wildcard term (`{golden hour|blue hour}`, `__lighting__`) expanded into one term per option."""
    from ..wildcards import expand, has_wildcards

    out = []
    for text in term_texts:
        out += [e.text for e in expand(text, wildcards=wildcards, flag="--term")] if has_wildcards(text) else [text]
    return out


def plan_matrix(library: Library, prompt_ref: str, term_texts: list[str], pairs_only: bool = False,
                templates_dir: str | None = None, wildcards: str | None = None) -> dict[str, Any]:
    """Check and render every variant of a matrix; reads only. Returns base, terms, design and variants."""
    from ..templates import PromptBuilder

    base = library.get_prompt(prompt_ref)
    known = tuple((base.get("fields") or {}).get("extras") or {})
    terms = [parse_term(t, known) for t in expand_terms(term_texts, wildcards)]
    names = [term_name(t).lower() for t in terms]
    if len(set(names)) != len(names):
        raise BadParameter(f"--term {next(n for n in names if names.count(n) > 1)!r} is given twice")
    design = matrix_design(len(terms), pairs_only)
    builder = PromptBuilder(templates_dir)
    variants = []
    for bits in design["runs"]:
        chosen = [t for t, b in zip(terms, bits) if b]
        prompt = None if not chosen else render_variant(builder, base, chosen)
        variants.append({"label": variant_label(bits), "bits": bits, "prompt": prompt})
    return {"base": base, "terms": terms, "design": design, "variants": variants}


def create_matrix_experiment(library: Library, name: str, plan: dict[str, Any], seeds: list[int],
                             params: GenerationParams, model: str | None = None,
                             extra: dict[str, Any] | None = None) -> int:
    """Store a planned matrix: its variant prompts (children of the base) and the experiment, all or nothing."""
    letters = {LETTERS[i]: term_name(t) for i, t in enumerate(plan["terms"])}
    record = {"terms": [term_name(t) for t in plan["terms"]], "letters": letters,
              "design": {k: v for k, v in plan["design"].items() if k != "runs"},
              "indicators": {v["label"]: v["bits"] for v in plan["variants"]}}

    def create(prompt_ids: list[int]) -> int:
        specs = [VariantSpec(v["label"], str(pid)) for v, pid in zip(plan["variants"], prompt_ids)]
        return create_experiment(library, name, specs, seeds, params, model,
                                 extra={**(extra or {}), "matrix": record})

    return library.create_experiment_with_prompts(plan["base"]["id"], [v["prompt"] for v in plan["variants"]],
                                                  ["matrix", name], create)


def matrix_record(experiment: dict[str, Any]) -> dict[str, Any] | None:
    """The experiment's matrix record (terms, letters, design, indicators), or None for other experiments."""
    return (experiment.get("params") or {}).get("matrix")


def _prompt_counter(model: str | None):
    """(count(text) -> (tokens, text past the window, window, the text as counted), tokenizer description)
    for MODEL: the encoder that reads the whole prompt in its family (T5 for SD 3.5 and FLUX.1, the LLM for FLUX.2
    klein, Z-Image and Qwen-Image), else CLIP (SD 1.x/2.x/SDXL, or no family known)."""
    from ..family_rules import family_for, variant_for
    from ..families import UNET_FAMILIES

    try:
        fam = family_for(model) if model else None
    except PromptkitError:
        fam = None
    if fam is not None and fam.key not in UNET_FAMILIES:
        from ..tokenwindows import encoder_tokenizer, family_windows
        from ..weighting import strip_weights

        longest = variant_for(fam, model)[1].get("max_tokens")
        reader = next(i for i, e in enumerate(fam.encoders) if e.tokenizer != "clip-bpe")

        def count_long(text: str) -> tuple[int, str, int, str]:
            sent = strip_weights(text)  # the engine strips A1111 weights for these encoders
            window = family_windows(fam, sent, model, longest)[reader]
            return window.count, window.overflow_text, window.window, sent

        return count_long, encoder_tokenizer(fam.encoders[reader], reader, model)[1]
    from ..lint import lint_tokenizer, token_report

    tokenizer, tokenizer_name = lint_tokenizer(model)

    def count_clip(text: str) -> tuple[int, str, int, str]:
        report = token_report(tokenizer, text)
        return report.count, report.overflow_text, report.limit, text

    return count_clip, tokenizer_name


def term_tokens(plan: dict[str, Any], model: str | None = None) -> list[dict[str, Any]]:
    """Per term: the tokens it costs (its own, plus the comma that joins it) and the variants in
    which it falls past the encoder's window (a term that is cut off cannot help).

    Counted as lint counts: for SD 1.x/2.x/SDXL (or no model) with CLIP (MODEL's own tokenizer when it
    is a local diffusers folder, else the bundled vocabulary; 77-token window); for the transformer
    families with the encoder that reads the whole prompt (T5 or the LLM, its window from the family
    table), exactly with a local folder's tokenizer, else approximately.
    """
    count, tokenizer_name = _prompt_counter(model)
    positives = {v["label"]: (v["prompt"].positive if v["prompt"] is not None else plan["base"]["positive"])
                 for v in plan["variants"]}
    reports = {label: count(text) for label, text in positives.items()}
    out = []
    for j, term in enumerate(plan["terms"]):
        tokens, _, _, said = count(term["text"])  # counted once per term, not once per variant
        said, cut = said.lower(), []
        for v in plan["variants"]:
            _, overflow, _, counted = reports[v["label"]]
            if not v["bits"][j] or not overflow:
                continue
            text = counted.lower()
            where, past = text.find(said), text.rfind(overflow.lower())
            if where >= 0 and past >= 0 and where + len(said) > past:
                cut.append(v["label"])
        out.append({"term": term_name(term), "letter": LETTERS[j], "tokens": tokens + 1,
                    "cut_off_in": cut, "limit": next(iter(reports.values()))[2], "tokenizer": tokenizer_name})
    return out


# -- wildcard variants: one variant per expansion -------------------------------------------


def _choice_label(text: str, taken: set[str]) -> str:
    label = " ".join(re.sub(r"[:=,]+", " ", text).split())[:60].strip() or "variant"
    if label.lower() == "tie":
        label = "tie variant"
    unique, n = label, 2
    while unique in taken:
        unique, n = f"{label} #{n}", n + 1
    taken.add(unique)
    return unique


def plan_wildcard_variants(library: Library, prompt_ref: str, text: str, *, wildcards: str | None = None,
                           mode: str = "combinatorial", count: int | None = None, seed: int = 0,
                           templates_dir: str | None = None) -> dict[str, Any]:
    """The variants of a wildcard experiment: TEXT (`FIELD=TEXT` or free text, with wildcards) expanded,
    each expansion added to the base prompt as a matrix term is. Reads only."""
    from ..templates import PromptBuilder
    from ..wildcards import expand

    base = library.get_prompt(prompt_ref)
    known = tuple((base.get("fields") or {}).get("extras") or {})
    head = parse_term(text, known)
    expansions = expand(head["text"], wildcards=wildcards, mode=mode, count=count, seed=seed, flag="--text")
    if len(expansions) < 2:
        raise BadParameter(f"--text {text!r} expands to {len(expansions)} variant; an experiment needs two or more")
    builder, taken, variants = PromptBuilder(templates_dir), set(), []
    for exp in expansions:
        term = {"field": head["field"], "text": exp.text}
        label = _choice_label(exp.text, taken)
        variants.append({"label": label, "prompt": render_variant(builder, base, [term]), **exp.to_dict()})
    return {"base": base, "text": text, "mode": mode, "seed": seed, "variants": variants}


def create_wildcard_experiment(library: Library, name: str, plan: dict[str, Any], seeds: list[int],
                               params: GenerationParams, model: str | None = None,
                               extra: dict[str, Any] | None = None) -> int:
    """Store a planned wildcard experiment; each variant's choices go in the experiment's `wildcards` record."""
    record = {"text": plan["text"], "mode": plan["mode"], "seed": plan["seed"],
              "variants": {v["label"]: {"text": v["text"], "choices": v["choices"]} for v in plan["variants"]}}

    def create(prompt_ids: list[int]) -> int:
        specs = [VariantSpec(v["label"], str(pid)) for v, pid in zip(plan["variants"], prompt_ids)]
        return create_experiment(library, name, specs, seeds, params, model,
                                 extra={**(extra or {}), "wildcards": record})

    return library.create_experiment_with_prompts(plan["base"]["id"], [v["prompt"] for v in plan["variants"]],
                                                  ["wildcards", name], create)
