"""The library at scale: 100,000 prompts and 1,000,000 generation rows.

Builds a library through promptkit's own migrations, fills it with prompts written from a
vocabulary (so full-text search sees realistic text) and generation rows whose images are
faked as random sha256 hashes (no files), then measures:

- full-text search p95 over ~200 varied queries through `Library.search` (goal < 20 ms);
- a prompt's page through `Library.show_prompt` p95 over 200 prompts (goal < 10 ms);
- database bytes per generation row (the generations table and its indexes).

Each latency is set beside its bare floor: the SQL underneath, fetched without building
dicts or decoding JSON. Timings are one call per query on one open library, after a
warm-up; the operating system's file cache is warm (the file was just written).

Usage: python benchmarks/library_scale.py [--prompts 100000] [--generations 1000000] [--quick]
       [--db PATH] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import Figure, figures_json, format_table, median, percentile  # noqa: E402

FULL_PROMPTS, FULL_GENERATIONS = 100_000, 1_000_000
QUICK_PROMPTS, QUICK_GENERATIONS = 10_000, 100_000
SEARCH_GOAL_MS, PAGE_GOAL_MS, BUILD_GOAL_S = 20.0, 10.0, 300.0

# -- vocabulary: what people write in Stable Diffusion prompts ------------------------

ADJECTIVES = """red blue golden silver ancient futuristic tiny giant lonely majestic ruined abandoned glowing
misty frozen burning haunted peaceful cozy elegant ornate rusty overgrown crystal wooden marble neon
shadowy radiant serene stormy gothic baroque minimalist whimsical cute fierce wise old young mechanical
ethereal celestial sunken floating hidden forgotten enchanted cybernetic steampunk victorian medieval
tropical arctic desert underwater autumn spring winter summer midnight dawn twilight velvet porcelain""".split()
NOUNS = """fox wolf cat dog owl dragon knight wizard witch samurai robot astronaut lighthouse castle cathedral
temple tower bridge village city street market library forest mountain lake river waterfall island ship
sailboat train car motorcycle airship portrait woman man girl boy child elder queen king princess warrior
monk dancer musician painter scientist explorer pirate viking elf dwarf goblin phoenix unicorn tiger lion
bear deer rabbit horse whale octopus jellyfish butterfly hummingbird garden greenhouse cottage cabin
lantern clock teapot bicycle guitar violin piano skull crown sword shield mask flower rose tulip lotus
orchid mushroom tree oak willow cactus moon sun planet galaxy nebula comet storm volcano canyon glacier
reef harbor alley rooftop balcony staircase corridor throne ruins statue fountain carousel circus""".split()
ACTIONS = [
    "standing", "sitting", "running", "flying", "sleeping", "reading", "dancing", "fighting", "walking",
    "swimming", "singing", "painting", "praying", "looking at the viewer", "gazing at the horizon",
    "holding a lantern", "casting a spell", "drinking tea", "playing music", "smiling", "laughing",
    "meditating", "climbing", "riding", "exploring", "resting in the shade", "guarding the gate",
    "watching the stars",
]
ENVIRONMENTS = [
    "in a misty forest", "on a stormy sea", "at golden hour", "under a starry sky", "in a neon-lit city at night",
    "in a snowy mountain pass", "on a sunlit meadow", "in a dusty library", "inside a gothic cathedral",
    "on a rainy street", "in a desert at noon", "beside a frozen lake", "in a bamboo grove", "on an alien planet",
    "in a cyberpunk alley", "at the edge of a cliff", "in a flower field", "in an underwater kingdom",
    "in a busy market", "in a quiet kitchen", "on a rooftop at dusk", "in a candlelit room", "in the clouds",
    "in a ruined temple", "by the seaside", "in a dense jungle", "on a foggy moor", "in a space station",
]
ARTISTS = [
    "claude monet", "vincent van gogh", "rembrandt", "hokusai", "john singer sargent", "alphonse mucha",
    "gustav klimt", "j m w turner", "caspar david friedrich", "edward hopper", "johannes vermeer",
    "winslow homer", "albert bierstadt", "ivan aivazovsky", "hiroshige", "mary cassatt",
]
TAGS = """animals architecture portrait landscape fantasy scifi horror cute moody experiment keeper favourite
client wip nature urban night water character concept print wallpaper study""".split()
NOTE_PHRASES = [
    "good composition", "hands look wrong", "try lower cfg", "best with DPM++ 2M Karras", "too saturated",
    "seed 42 is the keeper", "faces are better at 768", "compare with the watercolor version",
    "needs more contrast", "the sky is perfect", "use for the poster", "remove the text artefacts",
]
SAMPLERS = ["DPM++ 2M Karras", "Euler a", "Euler", "DDIM", "UniPC", "DPM++ SDE Karras"]
MODELS = [("stable-diffusion-v1-5/stable-diffusion-v1-5", ""), ("models/dreamshaper_8.safetensors", "879db523c3"),
          ("models/realisticVision_v51.safetensors", "15012c538f"), ("stabilityai/sdxl-turbo", "")]
VERSIONS = '{"diffusers": "0.36.0", "promptkit": "0.1.0", "torch": "2.13.0"}'


def load_presets() -> dict[str, dict[str, dict]]:
    folder = Path(__file__).resolve().parent.parent / "templates" / "presets"
    return {kind: {p["name"]: p for p in json.loads((folder / f"{kind}.json").read_text())}
            for kind in ("style", "quality", "negative")}


def long_tail_words(rng: random.Random, count: int) -> list[str]:
    """Invented words standing in for a real library's long tail (names, places, objects)."""
    onsets = "b c d f g h j k l m n p r s t v w z br cr dr fl gr kr pl st th tr".split()
    vowels = "a e i o u ai ea io ou".split()
    codas = ["", "n", "r", "s", "l", "th", "x", "nd", "rk"]
    words: set[str] = set()
    while len(words) < count:
        syllables = rng.randint(2, 3)
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables)))
    return sorted(words)


def zipf_weights(n: int, exponent: float = 1.0) -> list[float]:
    return [1 / (rank + 1) ** exponent for rank in range(n)]


@dataclass
class Vocabulary:
    rng: random.Random
    presets: dict = field(default_factory=load_presets)

    def __post_init__(self) -> None:
        self.rare = long_tail_words(self.rng, 5000)
        self.rare_weights = zipf_weights(len(self.rare))
        self.noun_weights = zipf_weights(len(NOUNS), 0.8)
        self.adjective_weights = zipf_weights(len(ADJECTIVES), 0.7)
        self.styles = list(self.presets["style"].values())
        self.qualities = list(self.presets["quality"].values())
        self.negatives = [n for n in self.presets["negative"].values()]

    def prompt_row(self, number: int, created_at: str) -> tuple:
        """One prompts row, as the default template would have rendered it."""
        rng = self.rng
        noun = rng.choices(NOUNS, self.noun_weights)[0]
        subject = f"{rng.choices(ADJECTIVES, self.adjective_weights)[0]} {noun}"
        if rng.random() < 0.3:
            subject += f" with a {rng.choices(ADJECTIVES, self.adjective_weights)[0]} {rng.choices(NOUNS, self.noun_weights)[0]}"
        rare = rng.choices(self.rare, self.rare_weights, k=rng.choice((0, 0, 1, 1, 2)))
        if rare:
            subject += ", " + ", ".join(rare)
        action = rng.choice(ACTIONS) if rng.random() < 0.6 else ""
        environment = rng.choice(ENVIRONMENTS) if rng.random() < 0.8 else ""
        styles = rng.sample(self.styles, rng.choice((0, 1, 1, 1, 2, 2, 3)))
        qualities = rng.sample(self.qualities, rng.choice((0, 1, 1, 2)))
        negative_preset = rng.choice(self.negatives)
        artist = f"by {rng.choice(ARTISTS)}" if rng.random() < 0.25 else ""
        positive_terms = [subject, action, environment, *(s["positive"] for s in styles),
                          *(q["positive"] for q in qualities), artist]
        negative_terms = [negative_preset["negative"], *(s.get("negative", "") for s in styles)]
        positive = ", ".join(t for t in positive_terms if t)
        negative = ", ".join(dict.fromkeys(t for term in negative_terms for t in term.split(", ") if t))
        fields = {"subject": subject, "action": action, "environment": environment,
                  "style": [s["name"] for s in styles], "quality": [q["name"] for q in qualities],
                  "negative": [], "negative_preset": negative_preset["name"], "extras": {}}
        name = f"{noun.replace(' ', '-')}-{number}" if rng.random() < 0.3 else None
        tags = rng.sample(TAGS, rng.choice((0, 0, 1, 1, 2, 3)))
        notes = "; ".join(rng.sample(NOTE_PHRASES, rng.choice((1, 2)))) if rng.random() < 0.15 else ""
        # About a third of prompts are iterations of a recent one (`promptkit build --parent`).
        parent_id = rng.randint(max(1, number - 50), number - 1) if number > 1 and rng.random() < 0.3 else None
        return (number, name, "default", "6d417689315f9196e82dadef827642599535b945b1208b4a541ab1551c35d58c",
                json.dumps(fields, sort_keys=True), positive, negative, parent_id, json.dumps(tags), notes,
                int(rng.random() < 0.05), created_at)

    def queries(self, count: int) -> list[str]:
        """Varied search queries: common and rare single words, pairs, triples, tags, misses."""
        rng = self.rng
        kinds = ["common"] * 25 + ["noun"] * 20 + ["rare"] * 20 + ["pair"] * 15 + ["triple"] * 8 + ["tag"] * 7 + ["miss"] * 5
        made = []
        for _ in range(count):
            kind = rng.choice(kinds)
            if kind == "common":
                made.append(rng.choice(["watercolor", "cinematic", "portrait", "masterpiece", "bokeh", "photorealistic",
                                        "forest", "night", "concept art", "oil painting", "sharp focus", "blurry"]))
            elif kind == "noun":
                made.append(rng.choice(NOUNS))
            elif kind == "rare":
                made.append(rng.choice(self.rare))
            elif kind == "pair":
                made.append(f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}")
            elif kind == "triple":
                made.append(f"{rng.choice(NOUNS)} {rng.choice(ENVIRONMENTS).split()[-1]} {rng.choice(self.styles)['name'].split('-')[0]}")
            elif kind == "tag":
                made.append(rng.choice(TAGS))
            else:
                made.append(rng.choice(["lighthuose", "dragn", "zzyzx", "qwertyuiop"]))
        return made


# -- building ------------------------------------------------------------------------


@dataclass
class BuildReport:
    prompts: int
    generations: int
    ratings: int
    seconds: float
    prompt_seconds: float
    generation_seconds: float


def _timestamp(start: float, offset_s: float) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(start + offset_s, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def _generation_rows(rng: random.Random, prompt_count: int, generation_count: int, start: float,
                     experiment_of_prompt: dict[int, tuple[int, str]]):
    """Rows in the order a person makes them: jobs of 1-8 seeds, prompts in random order.

    Generations per prompt are skewed (most prompts have a handful, a few have hundreds)
    and one prompt's jobs are spread through the table, not stored side by side.
    """
    weights = [rng.lognormvariate(0, 1.2) for _ in range(prompt_count)]
    scale = generation_count / sum(weights)
    counts = [int(w * scale) for w in weights]
    for index in rng.sample(range(prompt_count), generation_count - sum(counts)):
        counts[index] += 1
    jobs = []
    for prompt_index, count in enumerate(counts):
        while count > 0:
            size = min(count, rng.choice((1, 2, 4, 4, 4, 8)))
            jobs.append((prompt_index + 1, size))
            count -= size
    rng.shuffle(jobs)
    generation_id = 0
    step = 3e7 / max(1, len(jobs))  # a year of use, roughly
    for job_number, (prompt_id, size) in enumerate(jobs):
        model, model_hash = MODELS[prompt_id % len(MODELS)]
        sampler = SAMPLERS[(prompt_id * 7 + job_number) % len(SAMPLERS)]
        steps = (20, 25, 30, 40)[job_number % 4]
        cfg = (5.0, 6.5, 7.0, 7.5, 9.0)[job_number % 5]
        width, height = ((512, 512), (512, 768), (768, 512), (1024, 1024))[prompt_id % 4]
        first_seed = rng.randrange(2**32 - 8)
        seeds = list(range(first_seed, first_seed + size))
        seed_text = ", ".join(str(s) for s in seeds)
        experiment_id, variant = experiment_of_prompt.get(prompt_id, (None, None))
        created_at = _timestamp(start, job_number * step)
        for index, seed in enumerate(seeds):
            generation_id += 1
            sha = rng.randbytes(32).hex()
            yield (generation_id, prompt_id, experiment_id, variant, model, model_hash, sampler, steps, cfg,
                   width, height, seed, "cpu", f'{{"index": {index}, "seeds": [{seed_text}], "size": {size}}}', "{}",
                   sha, f"library-images/{sha[:2]}/{sha}.png", "cuda", "float16", VERSIONS,
                   round(rng.uniform(1.5, 6.0), 3), created_at)


def _insert(conn, table: str, count: int) -> str:
    """INSERT naming TABLE's first COUNT columns: later migrations add columns with defaults at the end."""
    columns = [row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")][:count]
    return f"INSERT INTO [{table}] ({', '.join(columns)}) VALUES ({', '.join('?' * count)})"


def build_library(path: Path, prompt_count: int, generation_count: int, seed: int = 0) -> BuildReport:
    """Fill a new library at PATH; rows go in with executemany, one transaction per table."""
    from promptkit.library import SEARCH_RANK_LIMIT, Library

    rng = random.Random(seed)
    vocabulary = Vocabulary(rng)
    start = time.time() - 3.2e7
    started = time.perf_counter()
    with Library(path) as library:
        conn = library.conn
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB for the build: random sha256 keys touch the whole index
        with library.write():
            conn.executemany(_insert(conn, "prompts", 12),
                             (vocabulary.prompt_row(n, _timestamp(start, n * 300)) for n in range(1, prompt_count + 1)))
        prompts_done = time.perf_counter()
        # One experiment per 50 prompts: two prompts as variants A and B.
        experiment_of_prompt: dict[int, tuple[int, str]] = {}
        experiments, variants = [], []
        for number in range(1, prompt_count // 50 + 1):
            pair = (number * 50 - 49, number * 50 - 48)
            experiments.append((number, f"experiment-{number}", "[1, 2, 3, 4]", "{}", MODELS[0][0], _timestamp(start, number)))
            for label, prompt_id in zip("AB", pair):
                variants.append((number, label, prompt_id, "{}"))
                experiment_of_prompt[prompt_id] = (number, label)
        with library.write():
            conn.executemany("INSERT INTO experiments (id, name, seeds, params, model, created_at) VALUES (?,?,?,?,?,?)",
                             experiments)
            conn.executemany(_insert(conn, "variants", 4), variants)
        with library.write():
            conn.executemany(_insert(conn, "generations", 22),
                             _generation_rows(rng, prompt_count, generation_count, start, experiment_of_prompt))
        generations_done = time.perf_counter()
        # About one image in twenty gets rated.
        rated = sorted(rng.sample(range(1, generation_count + 1), generation_count // 20))
        with library.write():
            conn.executemany("INSERT INTO ratings (generation_id, stars, note, created_at) VALUES (?,?,?,?)",
                             ((g, rng.randint(1, 5), rng.choice(NOTE_PHRASES) if rng.random() < 0.2 else "",
                               _timestamp(start, 3.1e7)) for g in rated))
        # No ANALYZE: a person's library has no planner statistics, so neither does this one.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finished = time.perf_counter()
    return BuildReport(prompt_count, generation_count, len(rated), finished - started,
                       prompts_done - started, generations_done - prompts_done)


# -- measuring -----------------------------------------------------------------------


class _RolledBack(Exception):
    """Raised inside a write transaction to undo it."""


def _time_each(call, arguments: list, cpu_times: list[float] | None = None) -> list[float]:
    """Wall milliseconds for one call per argument; this thread's CPU milliseconds into CPU_TIMES.

    On a machine shared with other work the wall time includes waiting for a core; the CPU
    time is what the call itself cost.
    """
    times = []
    for argument in arguments:
        started, cpu_started = time.perf_counter(), time.thread_time()
        call(argument)
        times.append((time.perf_counter() - started) * 1000)
        if cpu_times is not None:
            cpu_times.append((time.thread_time() - cpu_started) * 1000)
    return times


def generation_bytes(path: Path) -> tuple[float, float]:
    """(bytes on disk per generation row: table + its indexes, raw column bytes per row)."""
    conn = sqlite3.connect(str(path))
    try:
        rows = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
        indexes = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='generations'")]
        names = ["generations", *indexes]
        marks = ",".join("?" * len(names))
        on_disk = conn.execute(f"SELECT sum(pgsize) FROM dbstat WHERE name IN ({marks})", names).fetchone()[0]
        columns = [r[1] for r in conn.execute("PRAGMA table_info(generations)")]
        raw = conn.execute("SELECT " + " + ".join(f"coalesce(length(CAST({c} AS BLOB)), 0)" for c in columns)
                           + " FROM generations WHERE id % 100 = 0").fetchall()
    finally:
        conn.close()
    return on_disk / rows, median(r[0] for r in raw)


def measure_library(path: Path, queries: list[str], page_count: int = 200, seed: int = 1) -> list[Figure]:
    from promptkit.library import SEARCH_RANK_LIMIT, Library

    rng = random.Random(seed)
    with Library(path, create=False) as library:
        conn = library.conn
        prompt_count = conn.execute("SELECT max(id) FROM prompts").fetchone()[0]
        page_ids = [rng.randint(1, prompt_count) for _ in range(page_count)]
        heaviest_id, heaviest_rows = conn.execute(
            "SELECT prompt_id, count(*) AS n FROM generations GROUP BY prompt_id ORDER BY n DESC LIMIT 1").fetchone()

        def bare_search(query: str) -> list:
            fts = " ".join('"' + w.replace('"', '""') + '"' for w in query.split())
            return conn.execute("SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH ? "
                                "ORDER BY bm25(prompts_fts) LIMIT 20", [fts]).fetchall()

        def bare_page(prompt_id: int) -> list:
            conn.execute("SELECT * FROM prompts WHERE id = ?", [prompt_id]).fetchall()
            return conn.execute("SELECT * FROM generations WHERE prompt_id = ?", [prompt_id]).fetchall()

        # Warm up on queries and prompts that are not measured.
        warm_queries = Vocabulary(random.Random(seed + 1)).queries(20)
        for query in warm_queries:
            library.search(query)
            bare_search(query)
        for prompt_id in (rng.randint(1, prompt_count) for _ in range(20)):
            library.show_prompt(prompt_id)
            bare_page(prompt_id)

        search_cpu_ms: list[float] = []
        page_cpu_ms: list[float] = []
        search_ms = _time_each(library.search, queries, search_cpu_ms)
        bare_search_ms = _time_each(bare_search, queries)
        page_ms = _time_each(library.show_prompt, page_ids, page_cpu_ms)
        bare_page_ms = _time_each(bare_page, page_ids)
        heaviest_ms = median(_time_each(library.show_prompt, [heaviest_id] * 5))
        bare_heaviest_ms = median(_time_each(bare_page, [heaviest_id] * 5))
        unused = [r[0] for r in conn.execute(
            "SELECT id FROM prompts WHERE id NOT IN (SELECT prompt_id FROM generations) "
            "AND id NOT IN (SELECT prompt_id FROM variants) AND id NOT IN (SELECT parent_id FROM prompts "
            "WHERE parent_id IS NOT NULL) ORDER BY random() LIMIT 50")]
        delete_ms = []
        for prompt_id in unused:
            with contextlib.suppress(_RolledBack), library.write():
                started = time.perf_counter()
                conn.execute("DELETE FROM prompts WHERE id = ?", [prompt_id])
                delete_ms.append((time.perf_counter() - started) * 1000)
                raise _RolledBack
        match_counts = [conn.execute("SELECT count(*) FROM prompts_fts WHERE prompts_fts MATCH ?",
                                     [" ".join('"' + w.replace('"', '""') + '"' for w in q.split())]).fetchone()[0]
                        for q in queries]
        page_rows = [conn.execute("SELECT count(*) FROM generations WHERE prompt_id = ?", [p]).fetchone()[0]
                     for p in page_ids]
    per_row, raw_per_row = generation_bytes(path)
    size_mb = path.stat().st_size / 1e6
    search_p95, page_p95 = percentile(search_ms, 95), percentile(page_ms, 95)
    slow_searches = sum(ms > SEARCH_GOAL_MS for ms in search_ms)
    broad = sum(n > 30_000 for n in match_counts)
    broad_words = sorted({q for q, n in zip(queries, match_counts) if n > 30_000})
    return [
        Figure(f"search p95, {len(queries)} queries", search_p95, "ms", anchor=percentile(bare_search_ms, 95),
               goal=f"< {SEARCH_GOAL_MS:g} ms", met=search_p95 < SEARCH_GOAL_MS,
               note=f"Library.search, limit 20; wall p50 {median(search_ms):.2f} ms, max {max(search_ms):.1f} ms; "
                    f"CPU p95 {percentile(search_cpu_ms, 95):.2f} ms; {slow_searches} queries over {SEARCH_GOAL_MS:g} ms, "
                    f"{broad} matching over 30,000 prompts ({', '.join(broad_words) or 'none'}); "
                    f"ranks the newest {SEARCH_RANK_LIMIT:,} matches; "
                    "anchor: FTS5 ranking every match, alone (rowids, no row fetch)"),
        Figure(f"prompt page p95, {len(page_ids)} prompts", page_p95, "ms", anchor=percentile(bare_page_ms, 95),
               goal=f"< {PAGE_GOAL_MS:g} ms", met=page_p95 < PAGE_GOAL_MS,
               note=f"Library.show_prompt; wall p50 {median(page_ms):.2f} ms, max {max(page_ms):.1f} ms; "
                    f"CPU p95 {percentile(page_cpu_ms, 95):.2f} ms; "
                    f"generations per page: median {median(page_rows):.0f}, p95 {percentile(page_rows, 95):.0f}, "
                    f"max {max(page_rows)}; anchor: bare SELECT of the prompt and its generation rows"),
        Figure(f"prompt page, busiest prompt ({heaviest_rows} generations)", heaviest_ms, "ms",
               anchor=bare_heaviest_ms, note="median of 5; no goal: reported so the tail is visible"),
        Figure(f"delete an unused prompt p95, {len(delete_ms)} prompts", percentile(delete_ms, 95) if delete_ms else None,
               "ms", note="DELETE with foreign-key checks and the FTS trigger, rolled back; no goal: a future "
                          "`delete` command's cost (m002 indexes the child columns it checks)"),
        Figure("database bytes per generation row", per_row, "B", anchor=raw_per_row,
               note=f"generations table + its indexes (dbstat) / rows; anchor: median raw column bytes of a row; "
                    f"whole file {size_mb:.0f} MB"),
    ]


def run(prompt_count: int, generation_count: int, query_count: int = 200, db: Path | None = None,
        keep: bool = False) -> list[Figure]:
    """Build (or reuse, when DB exists) a library of this size and measure it."""
    work = None
    if db is None:
        work = Path(tempfile.mkdtemp(prefix="promptkit-library-scale-"))
        db = work / "library.db"
    figures = []
    try:
        if not db.exists():
            report = build_library(db, prompt_count, generation_count)
            figures.append(Figure(f"build: {prompt_count:,} prompts + {generation_count:,} generations", report.seconds,
                                  "s", goal=f"< {BUILD_GOAL_S:g} s" if generation_count >= FULL_GENERATIONS else "",
                                  met=report.seconds < BUILD_GOAL_S if generation_count >= FULL_GENERATIONS else None,
                                  note=f"prompts with FTS triggers {report.prompt_seconds:.1f} s, generations "
                                       f"{report.generation_seconds:.1f} s, {report.ratings:,} ratings, WAL checkpoint"))
        queries = Vocabulary(random.Random(7)).queries(query_count)
        figures += measure_library(db, queries)
    finally:
        if work is not None and not keep:
            for file in work.iterdir():
                file.unlink()
            work.rmdir()
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=None, help=f"prompts to create (default {FULL_PROMPTS:,})")
    parser.add_argument("--generations", type=int, default=None,
                        help=f"generation rows to create (default {FULL_GENERATIONS:,})")
    parser.add_argument("--quick", action="store_true",
                        help=f"about 1/10 scale: {QUICK_PROMPTS:,} prompts, {QUICK_GENERATIONS:,} generations")
    parser.add_argument("--queries", type=int, default=200, help="search queries and prompt pages to time")
    parser.add_argument("--db", type=Path, default=None,
                        help="library file; built there if missing, measured as it is if present")
    parser.add_argument("--keep", action="store_true", help="keep the temporary library and print its path")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    prompts = args.prompts or (QUICK_PROMPTS if args.quick else FULL_PROMPTS)
    generations = args.generations if args.generations is not None else (QUICK_GENERATIONS if args.quick else FULL_GENERATIONS)
    figures = run(prompts, generations, args.queries, args.db, args.keep)
    title = f"library at scale: {prompts:,} prompts, {generations:,} generation rows, sqlite {sqlite3.sqlite_version}"
    if args.json:
        print(figures_json(figures, benchmark="library_scale", title=title))
    else:
        print(format_table(figures, title))


if __name__ == "__main__":
    main()
