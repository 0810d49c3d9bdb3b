//! Reading HTML with html5ever's tokenizer (no tree: a preview needs a few tags, and a page
//! cut at the size limit is still tokenized up to the cut): the link a status previews, and
//! a page's OpenGraph/Twitter metadata, as Mastodon's `FetchLinkCardService` and
//! `LinkDetailsExtractor` read them.

use std::cell::RefCell;
use std::collections::HashMap;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, EndTag, StartTag, Tag, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use url::Url;

/// Collects what `on_tag` wants from start tags, and the text of `<title>`.
struct Sink<F: FnMut(&Tag)> {
    on_tag: RefCell<F>,
    in_title: RefCell<bool>,
    title: RefCell<String>,
}

impl<F: FnMut(&Tag)> TokenSink for Sink<F> {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        match token {
            Token::TagToken(tag) => {
                let name = &*tag.name;
                if name == "title" {
                    *self.in_title.borrow_mut() = tag.kind == StartTag;
                }
                if tag.kind == EndTag {
                    return TokenSinkResult::Continue;
                }
                (self.on_tag.borrow_mut())(&tag);
                // The tree builder would switch these states; tokenizing alone, the sink
                // must, or a script's `<meta` strings would read as tags.
                match name {
                    "title" | "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
                    "script" | "style" | "xmp" | "iframe" | "noembed" | "noframes" => {
                        return TokenSinkResult::RawData(RawKind::Rawtext);
                    }
                    _ => {}
                }
            }
            Token::CharacterTokens(text) if *self.in_title.borrow() => {
                self.title.borrow_mut().push_str(&text);
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// Runs the tokenizer over `html`; returns the `<title>` text.
fn tokenize(html: &str, on_tag: impl FnMut(&Tag)) -> String {
    let sink = Sink {
        on_tag: RefCell::new(on_tag),
        in_title: RefCell::new(false),
        title: RefCell::new(String::new()),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.title.take()
}

fn attr<'a>(tag: &'a Tag, name: &str) -> Option<&'a str> {
    tag.attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| &*a.value)
}

/// The first link of a status worth a preview: an http(s) URL to another server, neither a
/// mention (`u-url`, `h-card`, `mention`) nor a hashtag (`rel="tag"`). `local` is this
/// server's `host[:port]`.
pub fn first_link(content_html: &str, local: &str) -> Option<Url> {
    let mut found = None;
    tokenize(content_html, |tag| {
        if found.is_some() || &*tag.name != "a" {
            return;
        }
        let rel = attr(tag, "rel").unwrap_or_default();
        let class = attr(tag, "class").unwrap_or_default();
        let skipped = rel.split_ascii_whitespace().any(|r| r == "tag")
            || class
                .split_ascii_whitespace()
                .any(|c| matches!(c, "u-url" | "h-card" | "mention" | "hashtag"));
        if skipped {
            return;
        }
        let Some(url) = attr(tag, "href").and_then(|h| Url::parse(h.trim()).ok()) else {
            return;
        };
        let ours = url.host_str().is_some_and(|h| {
            let authority = match url.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            };
            authority.eq_ignore_ascii_case(local)
        });
        if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() && !ours {
            found = Some(url);
        }
    });
    found
}

/// The page's text in the charset its `Content-Type` names, else the one a `<meta>` near
/// its top declares, else UTF-8 (a browser's order, without its guessing). Malformed bytes,
/// such as a character cut at the size limit, become U+FFFD.
pub fn decode(bytes: &[u8], content_type: &str) -> String {
    let from_header = content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_string())
    });
    let declared = from_header.or_else(|| {
        // The HTML spec's prescan looks at the first 1024 bytes; ASCII-compatible charsets
        // keep the tags readable as Latin-1.
        let head: String = bytes.iter().take(1024).map(|&b| b as char).collect();
        let mut found = None;
        tokenize(&head, |tag| {
            if found.is_some() || &*tag.name != "meta" {
                return;
            }
            found = attr(tag, "charset").map(str::to_string).or_else(|| {
                let content = attr(tag, "content")?.to_ascii_lowercase();
                let at = content.find("charset=")?;
                Some(content[at + 8..].trim_matches(['"', '\'', ' ']).to_string())
            });
        });
        found
    });
    let encoding = declared
        .and_then(|label| encoding_rs::Encoding::for_label(label.trim().as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_with_bom_removal(bytes).0.into_owned()
}

/// What a page says about itself.
#[derive(Debug, Default, PartialEq)]
pub struct Meta {
    pub title: String,
    pub description: String,
    /// Absolute (resolved against the page's URL).
    pub image: Option<Url>,
    pub image_description: String,
    pub width: i32,
    pub height: i32,
    pub provider_name: String,
    pub author_name: String,
    pub language: Option<String>,
}

/// Longest title and description kept (Mastodon cuts both to these lengths).
const TITLE_MAX: usize = 2000;
const DESCRIPTION_MAX: usize = 2000;

/// Reads `html`, fetched from `url`. OpenGraph first, then Twitter's tags, then the plain
/// `<title>` and `description`.
pub fn meta(html: &str, url: &Url) -> Meta {
    let mut tags: HashMap<String, String> = HashMap::new();
    let mut lang = None;
    let title = tokenize(html, |tag| match &*tag.name {
        "meta" => {
            let key = attr(tag, "property").or_else(|| attr(tag, "name"));
            if let (Some(key), Some(content)) = (key, attr(tag, "content")) {
                // The first of each wins, as a browser's first match.
                tags.entry(key.trim().to_ascii_lowercase())
                    .or_insert_with(|| content.trim().to_string());
            }
        }
        "html" if lang.is_none() => lang = attr(tag, "lang").map(str::to_string),
        _ => {}
    });
    let pick = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| tags.get(*k).filter(|v| !v.is_empty()).cloned())
            .unwrap_or_default()
    };
    let title = Some(pick(&["og:title", "twitter:title"]))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| title.split_whitespace().collect::<Vec<_>>().join(" "));
    let image = Some(pick(&[
        "og:image:secure_url",
        "og:image",
        "og:image:url",
        "twitter:image",
        "twitter:image:src",
    ]))
    .filter(|i| !i.is_empty())
    .and_then(|i| url.join(&i).ok())
    .filter(|i| matches!(i.scheme(), "http" | "https"));
    let language = lang
        .or_else(|| Some(pick(&["og:locale"])).filter(|l| !l.is_empty()))
        .and_then(|l| {
            let primary = l.split(['-', '_']).next()?.to_ascii_lowercase();
            (2..=3).contains(&primary.len()).then_some(primary)
        });
    let number = |keys: &[&str]| pick(keys).parse::<i32>().unwrap_or(0).max(0);
    Meta {
        title: cut(&title, TITLE_MAX),
        description: cut(
            &pick(&["og:description", "twitter:description", "description"]),
            DESCRIPTION_MAX,
        ),
        image_description: pick(&["og:image:alt", "twitter:image:alt"]),
        width: number(&["og:image:width"]),
        height: number(&["og:image:height"]),
        image,
        provider_name: pick(&["og:site_name", "application-name"]),
        author_name: pick(&["author", "article:author", "twitter:creator"]),
        language,
    }
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_hashtags_and_local_links_are_passed_over() {
        let html = "<p><span class=\"h-card\"><a href=\"https://remote.example/@bob\" \
            class=\"u-url mention\">@<span>bob</span></a></span> \
            <a href=\"https://social.example/tags/rust\" class=\"mention hashtag\" rel=\"tag\">#rust</a> \
            <a href=\"https://social.example/@alice/1\">ours</a> \
            <a href=\"mailto:x@y.example\">mail</a> \
            <a href=\"https://news.example/a?b=1\" rel=\"nofollow noopener\">news</a> \
            <a href=\"https://later.example/\">later</a></p>";
        let url = first_link(html, "social.example").unwrap();
        assert_eq!(url.as_str(), "https://news.example/a?b=1");
        assert_eq!(first_link("<p>no links</p>", "social.example"), None);
        // A port is part of the server's name.
        let local = "<a href=\"http://127.0.0.1:8080/x\">x</a>";
        assert_eq!(first_link(local, "127.0.0.1:8080"), None);
        assert!(first_link(local, "127.0.0.1:9090").is_some());
    }

    #[test]
    fn pages_are_read_in_their_declared_charset() {
        // "Café" in ISO-8859-1 and in Shift_JIS ("日本" = 93fa 967b).
        let latin = b"<meta charset=\"iso-8859-1\"><title>Caf\xe9</title>";
        let url = Url::parse("https://a.example/").unwrap();
        assert_eq!(meta(&decode(latin, "text/html"), &url).title, "Café");
        let sjis = b"<title>\x93\xfa\x96\x7b</title>";
        assert_eq!(
            meta(&decode(sjis, "text/html; charset=Shift_JIS"), &url).title,
            "日本"
        );
        let http_equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">\
            <title>\x93quoted\x94</title>";
        assert_eq!(
            meta(&decode(http_equiv, "text/html"), &url).title,
            "\u{201c}quoted\u{201d}"
        );
        // Undeclared: UTF-8, a character cut short replaced.
        assert_eq!(decode("Café".as_bytes(), "text/html"), "Café");
        assert_eq!(decode(b"Caf\xc3", "text/html"), "Caf\u{fffd}");
    }

    #[test]
    fn opengraph_wins_over_twitter_and_plain_tags() {
        let page = "<!doctype html><html lang=\"fr-CA\"><head><title> Plain \n title </title>\
            <script>var s = '<meta property=\"og:title\" content=\"from a script\">';</script>\
            <meta name=\"twitter:title\" content=\"Twitter title\">\
            <meta property=\"og:title\" content=\"OG &amp; title\">\
            <meta name=\"description\" content=\"plain description\">\
            <meta property=\"og:image\" content=\"/img/a.png\">\
            <meta property=\"og:image:width\" content=\"640\">\
            <meta property=\"og:site_name\" content=\"News\">\
            <meta name=\"author\" content=\"Ann Author\"></head><body></body></html>";
        let url = Url::parse("https://news.example/articles/1").unwrap();
        let m = meta(page, &url);
        assert_eq!(m.title, "OG & title");
        assert_eq!(m.description, "plain description");
        assert_eq!(m.image.unwrap().as_str(), "https://news.example/img/a.png");
        assert_eq!((m.width, m.height), (640, 0));
        assert_eq!(m.provider_name, "News");
        assert_eq!(m.author_name, "Ann Author");
        assert_eq!(m.language.as_deref(), Some("fr"));
        let plain = meta("<title>Only  a\ttitle</title>", &url);
        assert_eq!(plain.title, "Only a title");
        assert_eq!(plain.image, None);
    }
}
