"""Vote rows: the blind pairwise choices of an experiment."""

from __future__ import annotations

from typing import Any

from .connection import utc_now


class VoteRows:
    """Vote access, mixed into `Library`; `experiments.votes` holds the rules."""

    def insert_vote(self, experiment_id: int, seed: int, left_generation_id: int, right_generation_id: int,
                    winner_generation_id: int | None) -> int:
        """Record a vote (no winner: a tie); return its id."""
        with self.write() as db:
            votes = db["votes"]
            votes.insert({"experiment_id": experiment_id, "seed": int(seed), "left_generation_id": left_generation_id,
                          "right_generation_id": right_generation_id, "winner_generation_id": winner_generation_id,
                          "created_at": utc_now()})
            return int(votes.last_pk)

    def delete_vote(self, vote_id: int) -> None:
        with self.write() as db:
            db.execute("DELETE FROM votes WHERE id = ?", [int(vote_id)])

    def experiment_vote_rows(self, experiment_id: int) -> list[dict[str, Any]]:
        """An experiment's votes, oldest first, with each side's variant label: id, seed, left,
        right, winner (a label, or None), tie (whether it was a tie), created_at."""
        label_of = dict(self.db.execute("SELECT id, variant FROM generations WHERE experiment_id = ?",
                                        [experiment_id]).fetchall())
        rows = self.db.execute(
            "SELECT id, seed, left_generation_id, right_generation_id, winner_generation_id, created_at "
            "FROM votes WHERE experiment_id = ? ORDER BY id", [experiment_id])
        return [{"id": vote_id, "seed": seed, "left": label_of.get(left), "right": label_of.get(right),
                 "winner": None if winner is None else label_of.get(winner), "tie": winner is None,
                 "created_at": created}
                for vote_id, seed, left, right, winner, created in rows]

    def vote_created_at(self, vote_id: int) -> str | None:
        """When vote VOTE_ID was recorded (None if there is no such vote)."""
        row = self.db.execute("SELECT created_at FROM votes WHERE id = ?", [int(vote_id)]).fetchone()
        return row[0] if row else None
