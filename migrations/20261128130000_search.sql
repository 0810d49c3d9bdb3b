-- PostgreSQL full-text search for /api/v2/search (OpenSearch takes the statuses over when
-- an instance configures one).
--
-- The `simple` configuration: lower-cased words, no stemming and no stop words. Statuses
-- come in every language, often several on one instance, and `language` is a guess or
-- missing; a per-language configuration would stem a query with one language's rules and
-- the statuses with another's, and drop words that are stop words in one language only.
-- `simple` finds the words people typed, in any script, the same way for everyone.

-- What a status is found by: its content warning and its text. Local statuses keep their
-- source text; remote ones only their HTML, whose tags the parser skips. Queries call this
-- function; PostgreSQL inlines it into its expression, which is why the index below is
-- built on that expression itself (an index on the call would never match the inlined
-- form). Change both together: tests/search.rs checks that the index is used.
CREATE FUNCTION status_search_document(spoiler_text text, source text, content_html text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN to_tsvector('simple'::regconfig,
                   spoiler_text || ' ' || CASE WHEN source = '' THEN content_html ELSE source END);

-- Reblogs carry no text of their own: only originals are searched.
CREATE INDEX statuses_search ON statuses
    USING gin (to_tsvector('simple'::regconfig,
                           spoiler_text || ' ' || CASE WHEN text = '' THEN content_html ELSE text END))
    WHERE reblog_of_id IS NULL;

-- Prefix searches of accounts and hashtags (`LIKE 'abc%'` on the lower-cased name): the
-- existing unique indexes use the database collation, which LIKE cannot use for prefixes.
CREATE INDEX accounts_username_prefix ON accounts (lower(username) text_pattern_ops);
CREATE INDEX tags_name_prefix ON tags (lower(name) text_pattern_ops);
