//! System 2's text side: a Hugging Face `tokenizer.json` (any model the `tokenizers` crate
//! reads: BPE, WordLevel, WordPiece, Unigram) and the prompt template that places the image
//! placeholder tokens and the instruction into one fixed-length token sequence.
//!
//! A prompt is `template` with `{images}` replaced by, for each camera view, `tokens_per_view`
//! copies of the image placeholder id (their embeddings are later replaced by the connector's
//! image embeddings), and `{instruction}` by the instruction's tokens. Text segments are
//! tokenized without special tokens; the placeholder ids are inserted directly, so a tokenizer
//! that would split the placeholder's spelling still works. The sequence is right-padded to a
//! fixed length so every plan of a model has the same shape `[S, D]`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::PolicyError;

/// Placeholders of a prompt template.
const IMAGES: &str = "{images}";
const INSTRUCTION: &str = "{instruction}";

/// Special tokens of the word-level tokenizers built here.
pub const PAD_TOKEN: &str = "<pad>";
/// Unknown word.
pub const UNK_TOKEN: &str = "<unk>";
/// Image placeholder.
pub const IMAGE_TOKEN: &str = "<image>";

/// How prompts are laid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    /// Template with exactly one `{images}` and one `{instruction}`, e.g.
    /// `"{images} {instruction}"` or Qwen's chat form
    /// `"<|im_start|>user\n{images}{instruction}<|im_end|>\n<|im_start|>assistant\n"`.
    pub template: String,
    /// The image placeholder token (must be in the vocabulary).
    pub image_token: String,
    /// The padding token (must be in the vocabulary).
    pub pad_token: String,
    /// Tokens left for the text (template text + instruction); longer instructions are cut
    /// (with a warning).
    pub max_text_tokens: usize,
}

impl Default for PromptConfig {
    fn default() -> Self {
        Self {
            template: "{images} {instruction}".into(),
            image_token: IMAGE_TOKEN.into(),
            pad_token: PAD_TOKEN.into(),
            max_text_tokens: 16,
        }
    }
}

/// One encoded prompt, all vectors of the fixed length `S`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Token ids `[S]` (image positions hold the placeholder id, padding the pad id).
    pub ids: Vec<u32>,
    /// 1 = token, 0 = padding `[S]`.
    pub attention_mask: Vec<bool>,
    /// 1 = image placeholder `[S]`.
    pub image_mask: Vec<bool>,
    /// Whether the instruction had to be cut to fit `max_text_tokens`.
    pub truncated: bool,
}

/// A tokenizer with its prompt layout.
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    tokenizer: Tokenizer,
    config: PromptConfig,
    image_id: u32,
    pad_id: u32,
    /// Template pieces around the placeholders, tokenized once.
    before_images: Vec<u32>,
    between: Vec<u32>,
    after_instruction: Vec<u32>,
    images_first: bool,
}

fn tok_err(origin: &Path, msg: impl Into<String>) -> PolicyError {
    PolicyError::ConfigFile {
        path: origin.to_path_buf(),
        msg: msg.into(),
    }
}

impl PromptEncoder {
    /// Loads `tokenizer.json` and checks `config` against its vocabulary.
    pub fn load(path: &Path, config: PromptConfig) -> Result<Self, PolicyError> {
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| tok_err(path, format!("not a tokenizer.json: {e}")))?;
        Self::new(tokenizer, config, path)
    }

    /// Wraps a tokenizer; `origin` names it in errors.
    pub fn new(
        tokenizer: Tokenizer,
        config: PromptConfig,
        origin: &Path,
    ) -> Result<Self, PolicyError> {
        let id = |tok: &str, field: &str| {
            tokenizer.token_to_id(tok).ok_or_else(|| {
                tok_err(
                    origin,
                    format!("prompt.{field} \"{tok}\" is not in the tokenizer's vocabulary"),
                )
            })
        };
        let image_id = id(&config.image_token, "image_token")?;
        let pad_id = id(&config.pad_token, "pad_token")?;
        let t = &config.template;
        let (ip, ii) = match (t.find(IMAGES), t.find(INSTRUCTION)) {
            (Some(a), Some(b))
                if t.matches(IMAGES).count() == 1 && t.matches(INSTRUCTION).count() == 1 =>
            {
                (a, b)
            }
            _ => {
                return Err(tok_err(
                    origin,
                    format!(
                        "prompt.template \"{t}\" must contain {{images}} and {{instruction}} exactly once each"
                    ),
                ));
            }
        };
        let images_first = ip < ii;
        let ((first, first_len), (second, second_len)) = if images_first {
            ((ip, IMAGES.len()), (ii, INSTRUCTION.len()))
        } else {
            ((ii, INSTRUCTION.len()), (ip, IMAGES.len()))
        };
        let mut enc = Self {
            tokenizer,
            config: config.clone(),
            image_id,
            pad_id,
            before_images: Vec::new(),
            between: Vec::new(),
            after_instruction: Vec::new(),
            images_first,
        };
        enc.before_images = enc.encode_text(&t[..first], origin)?;
        enc.between = enc.encode_text(&t[first + first_len..second], origin)?;
        enc.after_instruction = enc.encode_text(&t[second + second_len..], origin)?;
        let fixed = enc.before_images.len() + enc.between.len() + enc.after_instruction.len();
        if fixed >= config.max_text_tokens {
            return Err(tok_err(
                origin,
                format!(
                    "prompt.max_text_tokens ({}) leaves no room for the instruction: the template alone has {fixed} tokens",
                    config.max_text_tokens
                ),
            ));
        }
        Ok(enc)
    }

    fn encode_text(&self, text: &str, origin: &Path) -> Result<Vec<u32>, PolicyError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let e = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| tok_err(origin, format!("tokenizing \"{text}\": {e}")))?;
        Ok(e.get_ids().to_vec())
    }

    /// The prompt layout.
    pub fn config(&self) -> &PromptConfig {
        &self.config
    }

    /// The wrapped tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The placeholder id.
    pub fn image_token_id(&self) -> u32 {
        self.image_id
    }

    /// Sequence length `S` for `image_tokens` placeholder tokens in total.
    pub fn sequence_len(&self, image_tokens: usize) -> usize {
        image_tokens + self.config.max_text_tokens
    }

    /// Token ids of `text` (no special tokens).
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, PolicyError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| PolicyError::input("instruction", format!("cannot tokenize: {e}")))
    }

    /// Encodes `instruction` with `image_tokens` placeholders (all views together) into a
    /// prompt of length [`sequence_len`](Self::sequence_len).
    pub fn encode(&self, instruction: &str, image_tokens: usize) -> Result<Prompt, PolicyError> {
        let mut words = self.tokenize(instruction)?;
        let room = self.config.max_text_tokens
            - self.before_images.len()
            - self.between.len()
            - self.after_instruction.len();
        let truncated = words.len() > room;
        if truncated {
            tracing::warn!(
                tokens = words.len(),
                room,
                "instruction longer than prompt.max_text_tokens allows; cut"
            );
            words.truncate(room);
        }
        let images = vec![self.image_id; image_tokens];
        let (first, second) = if self.images_first {
            (&images, &words)
        } else {
            (&words, &images)
        };
        let mut ids = Vec::with_capacity(self.sequence_len(image_tokens));
        ids.extend(&self.before_images);
        ids.extend(first);
        ids.extend(&self.between);
        ids.extend(second);
        ids.extend(&self.after_instruction);
        let len = ids.len();
        let s = self.sequence_len(image_tokens);
        let mut image_mask = vec![false; s];
        let start_images = if self.images_first {
            self.before_images.len()
        } else {
            self.before_images.len() + words.len() + self.between.len()
        };
        for m in &mut image_mask[start_images..start_images + image_tokens] {
            *m = true;
        }
        let mut attention_mask = vec![true; len];
        attention_mask.resize(s, false);
        ids.resize(s, self.pad_id);
        Ok(Prompt {
            ids,
            attention_mask,
            image_mask,
            truncated,
        })
    }
}

/// A word-level `tokenizer.json` (lower-casing, whitespace/punctuation split) whose vocabulary
/// is `<pad>`, `<unk>`, `<image>` (ids 0, 1, 2) and then every distinct lower-cased word of
/// `corpus` in sorted order. Small vocabularies keep the embedding table of a tiny planner
/// small; words outside the vocabulary map to `<unk>`. The JSON is the `tokenizers` library's
/// own format (Python `tokenizers.Tokenizer.from_file` reads it).
pub fn word_level_tokenizer_json<'a>(corpus: impl IntoIterator<Item = &'a str>) -> String {
    let mut words = std::collections::BTreeSet::new();
    for text in corpus {
        let lower = text.to_lowercase();
        // The same split as the `Whitespace` pre-tokenizer: runs of word characters, runs of
        // other non-space characters.
        let mut cur = String::new();
        let mut cur_word = None;
        for ch in lower.chars() {
            let kind = if ch.is_whitespace() {
                None
            } else {
                Some(ch.is_alphanumeric() || ch == '_')
            };
            if (kind != cur_word || kind.is_none()) && !cur.is_empty() {
                words.insert(std::mem::take(&mut cur));
            }
            if kind.is_some() {
                cur.push(ch);
            }
            cur_word = kind;
        }
        if !cur.is_empty() {
            words.insert(cur);
        }
    }
    let specials = [PAD_TOKEN, UNK_TOKEN, IMAGE_TOKEN];
    let mut vocab = serde_json::Map::new();
    for (i, t) in specials.iter().enumerate() {
        vocab.insert((*t).into(), i.into());
    }
    for w in words {
        if !vocab.contains_key(&w) {
            let id = vocab.len();
            vocab.insert(w, id.into());
        }
    }
    let added: Vec<_> = specials
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({
                "id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true
            })
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": { "type": "Lowercase" },
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": null,
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": UNK_TOKEN }
    });
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// Parses a `tokenizer.json` text (e.g. from [`word_level_tokenizer_json`]).
pub fn tokenizer_from_json(json: &str, origin: &Path) -> Result<Tokenizer, PolicyError> {
    json.parse::<Tokenizer>()
        .map_err(|e| tok_err(origin, format!("not a tokenizer.json: {e}")))
}
