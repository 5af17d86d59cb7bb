"""Prompt text to embeddings: diffusers' own encoding for plain prompts, compel for weights, BREAK and length."""

from __future__ import annotations

from typing import Any

import torch

from ..weighting import CHUNK_TOKENS, is_weighted, strip_lora_tags, to_compel_segments


class PromptEncoder:
    """Encodes prompt pairs for one loaded pipeline (SD 1.x/2.x: one text encoder; SDXL: two)."""

    def __init__(self, pipe, family: str, device: str, dtype: torch.dtype) -> None:
        self.pipe = pipe
        self.sdxl = family == "sdxl"
        self.device = device
        self.dtype = dtype
        self._compel: list[Any] | None = None

    def prompt_mode(self, text: str) -> str:
        """plain (diffusers' own encoding), weighted (A1111 weights or BREAK) or long (past 75 tokens)."""
        if is_weighted(text):
            return "weighted"
        ids = self.pipe.tokenizer(strip_lora_tags(text), add_special_tokens=False)["input_ids"]
        return "long" if len(ids) > CHUNK_TOKENS else "plain"

    def pair_mode(self, positive: str, negative: str) -> str:
        """The mode a prompt pair is encoded in: plain only when both are plain."""
        modes = {self.prompt_mode(positive), self.prompt_mode(negative)}
        return "plain" if modes == {"plain"} else "weighted" if "weighted" in modes else "long"

    def encode(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        """Prompt embeddings as keyword arguments of the pipeline."""
        with torch.inference_mode():
            if self.pair_mode(positive, negative) == "plain":
                return self.encode_plain(strip_lora_tags(positive), strip_lora_tags(negative), guidance)
            return self.encode_compel(positive, negative, guidance)

    def encode_plain(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        negative_prompt = negative if guidance else None
        if self.sdxl:
            pos, neg, pooled, neg_pooled = self.pipe.encode_prompt(
                positive, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=guidance,
                negative_prompt=negative_prompt)
            return {"prompt_embeds": pos, "negative_prompt_embeds": neg, "pooled_prompt_embeds": pooled,
                    "negative_pooled_prompt_embeds": neg_pooled}
        pos, neg = self.pipe.encode_prompt(positive, self.device, 1, guidance, negative_prompt=negative_prompt)
        return {"prompt_embeds": pos, "negative_prompt_embeds": neg}

    def _compel_encoders(self) -> list[Any]:
        if self._compel is None:
            from compel import Compel, ReturnedEmbeddingsType
            from compel.embeddings_provider import SplitLongTextMode

            common = {"truncate_long_prompts": False, "device": self.device,
                      "split_long_text_mode": SplitLongTextMode.WORDS}
            if self.sdxl:
                penultimate = ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED
                self._compel = [
                    Compel(tokenizer=self.pipe.tokenizer, text_encoder=self.pipe.text_encoder,
                           returned_embeddings_type=penultimate, **common),
                    Compel(tokenizer=self.pipe.tokenizer_2, text_encoder=self.pipe.text_encoder_2,
                           returned_embeddings_type=penultimate, requires_pooled=True, **common),
                ]
            else:
                self._compel = [Compel(tokenizer=self.pipe.tokenizer, text_encoder=self.pipe.text_encoder, **common)]
        return self._compel

    def _compel_segment(self, text: str) -> tuple[Any, Any]:
        encoders = self._compel_encoders()
        if len(encoders) == 1:
            return encoders[0](text), None
        left = encoders[0](text)
        right, pooled = encoders[1](text)
        return torch.cat([left, right], dim=-1), pooled

    def _compel_embeds(self, text: str) -> tuple[Any, Any]:
        # Each BREAK segment starts a fresh 77-token window, as in A1111.
        parts = [self._compel_segment(segment) for segment in to_compel_segments(text)]
        return torch.cat([p[0] for p in parts], dim=1).to(self.dtype), parts[0][1]

    def encode_compel(self, positive: str, negative: str, guidance: bool) -> dict[str, Any]:
        pos, pooled = self._compel_embeds(positive)
        embeds: dict[str, Any] = {"prompt_embeds": pos}
        if self.sdxl:
            embeds["pooled_prompt_embeds"] = pooled.to(self.dtype)
        if not guidance:
            return embeds
        zeros = self.sdxl and not negative and getattr(self.pipe.config, "force_zeros_for_empty_prompt", False)
        neg, neg_pooled = self._compel_embeds(negative)
        # Pad the shorter with empty-prompt windows so both have the same number of 77-token chunks.
        empty, _ = self._compel_embeds("")
        while neg.shape[1] < pos.shape[1]:
            neg = torch.cat([neg, empty], dim=1)
        while pos.shape[1] < neg.shape[1]:
            pos = torch.cat([pos, empty], dim=1)
        embeds["prompt_embeds"] = pos
        embeds["negative_prompt_embeds"] = torch.zeros_like(neg) if zeros else neg
        if self.sdxl:
            embeds["negative_pooled_prompt_embeds"] = (torch.zeros_like(neg_pooled) if zeros else neg_pooled).to(
                self.dtype)
        return embeds
