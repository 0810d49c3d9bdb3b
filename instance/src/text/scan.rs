//! Splits status text into plain runs, URLs, mentions and hashtags, with Mastodon's rules
//! for where each may start (a URL not inside a word, a mention not after `/` or a word
//! character, so that e-mail addresses and paths stay text; a hashtag not after `/` or `)`,
//! so that URL fragments stay text).

/// A mention as written: `@username` or `@username@domain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acct {
    pub username: String,
    /// As written (see [`Acct::normalized`]).
    pub domain: Option<String>,
}

impl Acct {
    /// The domain lower-cased, and none at all when it names this server.
    pub fn normalized(&self, local_domain: &str) -> Acct {
        let domain = self
            .domain
            .as_ref()
            .map(|d| d.to_lowercase())
            .filter(|d| !d.eq_ignore_ascii_case(local_domain));
        Acct {
            username: self.username.clone(),
            domain,
        }
    }

    /// The same account (usernames are case-insensitive).
    pub fn same(&self, other: &Acct) -> bool {
        self.username.to_lowercase() == other.username.to_lowercase()
            && self.domain.as_ref().map(|d| d.to_lowercase())
                == other.domain.as_ref().map(|d| d.to_lowercase())
    }

    /// The mention as it was typed.
    pub fn written(&self) -> String {
        match &self.domain {
            Some(d) => format!("@{}@{d}", self.username),
            None => format!("@{}", self.username),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token<'a> {
    Text(&'a str),
    Url(&'a str),
    Mention(Acct),
    /// The name, without `#`.
    Hashtag(&'a str),
}

/// The tokens of `text`, in order; concatenated they give the text back.
pub fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    let mut out = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let prev = text[..i].chars().next_back();
        let found = match c {
            'h' | 'H' => url_at(text, i, prev).map(|end| (end, Token::Url(&text[i..end]))),
            '@' => mention_at(text, i, prev),
            '#' => hashtag_at(text, i, prev).map(|end| (end, Token::Hashtag(&text[i + 1..end]))),
            _ => None,
        };
        match found {
            Some((end, token)) => {
                if text_start < i {
                    out.push(Token::Text(&text[text_start..i]));
                }
                out.push(token);
                i = end;
                text_start = end;
            }
            None => i += c.len_utf8(),
        }
    }
    if text_start < text.len() {
        out.push(Token::Text(&text[text_start..]));
    }
    out.into_iter()
}

/// Letters, digits, `_`, and the combining marks that are part of words in many scripts.
fn is_word(c: char) -> bool {
    c.is_alphanumeric()
        || c == '_'
        || matches!(c,
            '\u{0300}'..='\u{036F}' | '\u{0483}'..='\u{0489}' | '\u{0591}'..='\u{05C7}'
            | '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0900}'..='\u{0963}'
            | '\u{0966}'..='\u{0DFF}' | '\u{0E31}'..='\u{0E4E}' | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}' | '\u{200C}' | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}')
}

/// The end of an http(s) URL starting at `i`, if one does.
fn url_at(text: &str, i: usize, prev: Option<char>) -> Option<usize> {
    // Twitter-text's rule, which Mastodon uses: not glued to a word, a mention or a tag.
    if prev.is_some_and(|c| c.is_alphanumeric() || "@$#＠＃".contains(c)) {
        return None;
    }
    let rest = &text[i..];
    let scheme_len = ["https://", "http://"].iter().find_map(|s| {
        rest.get(..s.len())
            .filter(|head| head.eq_ignore_ascii_case(s))
            .map(|_| s.len())
    })?;
    let len = rest
        .find(|c: char| c.is_whitespace() || "<>\"".contains(c))
        .unwrap_or(rest.len());
    let end = trim_trailing(&rest[..len]);
    let candidate = &rest[..end];
    if end <= scheme_len {
        return None;
    }
    let parsed = url::Url::parse(candidate).ok()?;
    parsed
        .host_str()
        .is_some_and(|h| !h.is_empty())
        .then_some(i + end)
}

/// The length of `url` without punctuation that ends the sentence rather than the URL; a
/// closing parenthesis stays when the URL opened one (Wikipedia links).
fn trim_trailing(url: &str) -> usize {
    let mut end = url.len();
    loop {
        let Some(c) = url[..end].chars().next_back() else {
            return end;
        };
        let unbalanced_paren =
            c == ')' && url[..end].matches('(').count() < url[..end].matches(')').count();
        if ".,;:!?'\"]}*".contains(c) || unbalanced_paren {
            end -= c.len_utf8();
        } else {
            return end;
        }
    }
}

/// A run of characters allowed by `allowed`, from `start`, without trailing characters that
/// `may_end` refuses: (end, text).
fn run(
    text: &str,
    start: usize,
    allowed: impl Fn(char) -> bool,
    may_end: impl Fn(char) -> bool,
) -> (usize, &str) {
    let len = text[start..]
        .find(|c: char| !allowed(c))
        .unwrap_or(text.len() - start);
    let mut s = &text[start..start + len];
    while let Some(c) = s.chars().next_back() {
        if may_end(c) {
            break;
        }
        s = &s[..s.len() - c.len_utf8()];
    }
    (start + s.len(), s)
}

/// `@username` or `@username@domain` starting at `i`: (end, token).
fn mention_at<'a>(text: &'a str, i: usize, prev: Option<char>) -> Option<(usize, Token<'a>)> {
    if prev.is_some_and(|c| is_word(c) || c == '/') {
        return None;
    }
    let user_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (end, username) = run(
        text,
        i + 1,
        |c| user_char(c) || c == '.' || c == '-',
        user_char,
    );
    if !username.starts_with(user_char) {
        return None;
    }
    let mut acct = Acct {
        username: username.to_string(),
        domain: None,
    };
    let mut end = end;
    if text[end..].starts_with('@') {
        let (domain_end, domain) = run(
            text,
            end + 1,
            |c| is_word(c) || c == '.' || c == '-',
            is_word,
        );
        if domain.chars().count() >= 2 && domain.starts_with(|c: char| is_word(c) || c == '.') {
            // An account on a server with a port (`@bob@127.0.0.1:3000`, Mastodon's
            // development setups and our two-server tests): its handle includes the port.
            let port_end = port_at(text, domain_end).unwrap_or(domain_end);
            acct.domain = Some(text[end + 1..port_end].to_string());
            end = port_end;
        }
    }
    Some((end, Token::Mention(acct)))
}

/// The end of `:port` at `i` (1 to 5 digits, not followed by a word character, so that
/// "@bob@home:10pm" stays a mention of bob@home).
fn port_at(text: &str, i: usize) -> Option<usize> {
    let digits = text[i..].strip_prefix(':')?;
    let len = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let after = digits[len..].chars().next();
    ((1..=5).contains(&len) && !after.is_some_and(is_word)).then_some(i + 1 + len)
}

/// `#name` starting at `i`: the end of the name.
fn hashtag_at(text: &str, i: usize, prev: Option<char>) -> Option<usize> {
    if prev.is_some_and(|c| is_word(c) || c == '/' || c == ')') {
        return None;
    }
    let inner = |c: char| is_word(c) || c == '·' || c == '\u{200C}';
    let (end, name) = run(text, i + 1, inner, |c| is_word(c) && c != '\u{200C}');
    let valid = name.starts_with(|c: char| is_word(c) && c != '\u{200C}')
        && name.chars().any(|c| c.is_alphabetic() || c == '_');
    valid.then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(username: &str, domain: Option<&str>) -> Token<'static> {
        Token::Mention(Acct {
            username: username.into(),
            domain: domain.map(String::from),
        })
    }

    #[test]
    fn text_splits_into_tokens_that_give_it_back() {
        let cases: Vec<(&str, Vec<Token>)> = vec![
            ("plain", vec![Token::Text("plain")]),
            (
                "hi @al.ice-@x.example. #tag!",
                vec![
                    Token::Text("hi "),
                    acct("al.ice", None),
                    Token::Text("-"),
                    acct("x.example", None),
                    Token::Text(". "),
                    Token::Hashtag("tag"),
                    Token::Text("!"),
                ],
            ),
            (
                "@bob@Remote.example:",
                vec![acct("bob", Some("Remote.example")), Token::Text(":")],
            ),
            (
                "@bob@127.0.0.1:3000, @eve@home:10pm",
                vec![
                    acct("bob", Some("127.0.0.1:3000")),
                    Token::Text(", "),
                    acct("eve", Some("home")),
                    Token::Text(":10pm"),
                ],
            ),
            ("@bob@x", vec![acct("bob", None), Token::Text("@x")]),
            ("@", vec![Token::Text("@")]),
            ("@.x", vec![Token::Text("@.x")]),
            ("a@b.example", vec![Token::Text("a@b.example")]),
            (
                "(HTTPS://Example.com/x)",
                vec![
                    Token::Text("("),
                    Token::Url("HTTPS://Example.com/x"),
                    Token::Text(")"),
                ],
            ),
            (
                "see https://example.com/#frag",
                vec![Token::Text("see "), Token::Url("https://example.com/#frag")],
            ),
            (
                "#1 #_ #a·b·",
                vec![
                    Token::Text("#1 "),
                    Token::Hashtag("_"),
                    Token::Text(" "),
                    Token::Hashtag("a·b"),
                    Token::Text("·"),
                ],
            ),
            ("#हिन्दी", vec![Token::Hashtag("हिन्दी")]),
            ("x)#no a/#no", vec![Token::Text("x)#no a/#no")]),
        ];
        for (input, want) in cases {
            let got: Vec<Token> = tokens(input).collect();
            assert_eq!(got, want, "{input:?}");
            let back: String = got
                .iter()
                .map(|t| match t {
                    Token::Text(s) | Token::Url(s) => s.to_string(),
                    Token::Mention(a) => a.written(),
                    Token::Hashtag(h) => format!("#{h}"),
                })
                .collect();
            assert_eq!(back, input);
        }
    }
}
