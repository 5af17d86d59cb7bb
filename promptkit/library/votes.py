"""Vote rows: the blind pairwise choices of an experiment, each with the rater who cast it."""

from __future__ import annotations

from typing import Any

from .connection import utc_now

DEFAULT_RATER = "me"  # the one local person; m008 gave every earlier vote this name


class VoteRows:
    """Vote access, mixed into `Library`; `experiments.votes` holds the rules."""

    def insert_vote(self, experiment_id: int, seed: int, left_generation_id: int, right_generation_id: int,
                    winner_generation_id: int | None, rater: str = DEFAULT_RATER) -> tuple[int, list[int]]:
        """Record RATER's vote (no winner: a tie), replacing RATER's earlier votes on the same pair.

        The same pair is the same experiment, seed and two generations, whichever side each was
        shown on. The old rows are deleted and the new one inserted in one transaction, so a pair
        never counts twice for one rater.

        :returns: the new vote's id and the ids of the votes it replaced (usually none).
        """
        pair = sorted((int(left_generation_id), int(right_generation_id)))
        with self.write() as db:
            replaced = [row[0] for row in db.execute(
                "SELECT id FROM votes WHERE experiment_id = ? AND seed = ? AND rater = ? "
                "AND min(left_generation_id, right_generation_id) = ? "
                "AND max(left_generation_id, right_generation_id) = ?",
                [experiment_id, int(seed), rater, *pair])]
            if replaced:
                db.execute(f"DELETE FROM votes WHERE id IN ({', '.join('?' * len(replaced))})", replaced)
            votes = db["votes"]
            votes.insert({"experiment_id": experiment_id, "seed": int(seed), "left_generation_id": left_generation_id,
                          "right_generation_id": right_generation_id, "winner_generation_id": winner_generation_id,
                          "created_at": utc_now(), "rater": rater})
            return int(votes.last_pk), replaced

    def delete_vote(self, vote_id: int) -> None:
        with self.write() as db:
            db.execute("DELETE FROM votes WHERE id = ?", [int(vote_id)])

    def experiment_vote_rows(self, experiment_id: int) -> list[dict[str, Any]]:
        """An experiment's votes, oldest first, with each side's variant label: id, seed, left,
        right, winner (a label, or None), tie (whether it was a tie), rater, created_at."""
        label_of = dict(self.db.execute("SELECT id, variant FROM generations WHERE experiment_id = ?",
                                        [experiment_id]).fetchall())
        rows = self.db.execute(
            "SELECT id, seed, left_generation_id, right_generation_id, winner_generation_id, rater, created_at "
            "FROM votes WHERE experiment_id = ? ORDER BY id", [experiment_id])
        return [{"id": vote_id, "seed": seed, "left": label_of.get(left), "right": label_of.get(right),
                 "winner": None if winner is None else label_of.get(winner), "tie": winner is None,
                 "rater": rater, "created_at": created}
                for vote_id, seed, left, right, winner, rater, created in rows]

    def vote_created_at(self, vote_id: int) -> str | None:
        """When vote VOTE_ID was recorded (None if there is no such vote)."""
        row = self.db.execute("SELECT created_at FROM votes WHERE id = ?", [int(vote_id)]).fetchone()
        return row[0] if row else None
