"""Byte-level tokenizer for FiftyNet.

Text is encoded as its UTF-8 bytes: byte `b` is token id `b` (0-255), with no offset. Three special tokens follow the
bytes: `<|pad|>` = 256, `<|bos|>` = 257 and `<|endoftext|>` = 258 (the end-of-sequence token), for 259 ids in all.

This file is remote code: it imports nothing but `transformers` and the standard library, so that
`AutoTokenizer.from_pretrained(folder, trust_remote_code=True)` can load it from a saved folder on its own.
"""

import re

from transformers import AddedToken, PreTrainedTokenizer


NUM_BYTES = 256
PAD_TOKEN_ID = NUM_BYTES
BOS_TOKEN_ID = NUM_BYTES + 1
EOS_TOKEN_ID = NUM_BYTES + 2


class FiftyNetByteTokenizer(PreTrainedTokenizer):
    """
    Tokenizer that maps text to its UTF-8 bytes, and ids back to text.

    Ids 0-255 are the bytes themselves; their token strings are `chr(id)`, as in ByT5. Ids 256, 257 and 258 are the
    pad, bos and eos tokens. There is no unknown token and no vocabulary file.

    Encoding is lossless: raw text always becomes bytes, even where it spells a special token such as
    `"<|endoftext|>"` (the tokenizer defaults to `split_special_tokens=True`; pass `split_special_tokens=False` to a
    call to match special tokens in text instead). Tokens added with `add_tokens` (not special) are matched in text
    and emitted as their own ids. No special tokens are added, so a prompt encodes to exactly its
    bytes. Decoding never fails: bytes that are not valid UTF-8 become U+FFFD replacement characters.

    Args:
        pad_token (`str` or `AddedToken`, *optional*, defaults to `"<|pad|>"`):
            The padding token, id 256.
        bos_token (`str` or `AddedToken`, *optional*, defaults to `"<|bos|>"`):
            The beginning-of-sequence token, id 257.
        eos_token (`str` or `AddedToken`, *optional*, defaults to `"<|endoftext|>"`):
            The end-of-sequence token, id 258.
        kwargs:
            Passed to [`PreTrainedTokenizer`], e.g. `padding_side` or `model_max_length`.
    """

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        pad_token: str | AddedToken = "<|pad|>",
        bos_token: str | AddedToken = "<|bos|>",
        eos_token: str | AddedToken = "<|endoftext|>",
        **kwargs,
    ) -> None:
        special_tokens = {PAD_TOKEN_ID: pad_token, BOS_TOKEN_ID: bos_token, EOS_TOKEN_ID: eos_token}
        # The base class appends special tokens it does not know yet after the current vocabulary; registering them
        # first pins them to their fixed ids, which a saved config's `added_tokens_decoder` then confirms.
        self._added_tokens_decoder = {
            token_id: token if isinstance(token, AddedToken) else AddedToken(token, special=True, normalized=False)
            for token_id, token in special_tokens.items()
        }
        kwargs.setdefault("split_special_tokens", True)
        super().__init__(pad_token=pad_token, bos_token=bos_token, eos_token=eos_token, **kwargs)

    @property
    def vocab_size(self) -> int:
        """The 256 bytes plus the pad, bos and eos tokens; tokens added later are not counted."""
        return EOS_TOKEN_ID + 1

    def get_vocab(self) -> dict[str, int]:
        """Token string -> id for the bytes, the special tokens and any tokens added later."""
        vocab = {chr(byte): byte for byte in range(NUM_BYTES)}
        vocab.update(self._added_tokens_encoder)
        return vocab

    def tokenize(self, text: str, **kwargs) -> list[str]:
        """Splits `text` into byte tokens and the tokens added with `add_tokens` (non-special ones).

        With `split_special_tokens=True` (the default here), transformers' tokenize matches no added token at all, so
        an added token would never be emitted and its new embedding never trained. Special tokens stay bytes, as
        documented; added tokens are matched, longest first.
        """
        added = [token for token, token_id in self.added_tokens_encoder.items()
                 if not self.added_tokens_decoder[token_id].special]
        if not added or not kwargs.get("split_special_tokens", self.split_special_tokens):
            return super().tokenize(text, **kwargs)
        pattern = re.compile("|".join(map(re.escape, sorted(added, key=len, reverse=True))))
        tokens, start = [], 0
        for match in pattern.finditer(text):
            tokens += super().tokenize(text[start : match.start()], **kwargs) if match.start() > start else []
            tokens.append(match.group())
            start = match.end()
        return tokens + (super().tokenize(text[start:], **kwargs) if start < len(text) else [])

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        """Splits `text` into one token string per UTF-8 byte."""
        return [chr(byte) for byte in text.encode("utf-8")]

    def _convert_token_to_id(self, token: str) -> int | None:
        """Maps a byte's token string to its id; any other string is not in the vocabulary and gives `None`."""
        if len(token) == 1 and ord(token) < NUM_BYTES:
            return ord(token)
        return None

    def _convert_id_to_token(self, index: int) -> str:
        """Maps a byte id to its token string (special and added ids are resolved by the caller)."""
        if not 0 <= index < NUM_BYTES:
            raise ValueError(f"Token id {index} is outside this tokenizer's vocabulary of {len(self)} ids.")
        return chr(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Joins byte tokens into UTF-8 text (invalid bytes become U+FFFD) and keeps other tokens as they are."""
        text, pending_bytes = [], bytearray()
        for token in tokens:
            byte = self._convert_token_to_id(token)
            if byte is not None:
                pending_bytes.append(byte)
                continue
            # Decode the bytes gathered so far as one run, so that a character split over several tokens survives.
            text.append(pending_bytes.decode("utf-8", errors="replace"))
            pending_bytes.clear()
            text.append(token)
        text.append(pending_bytes.decode("utf-8", errors="replace"))
        return "".join(text)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Saves nothing: the vocabulary is fixed, so there is no vocabulary file."""
        return ()


FiftyNetByteTokenizer.register_for_auto_class("AutoTokenizer")

__all__ = ["FiftyNetByteTokenizer"]
