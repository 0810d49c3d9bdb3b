-- A preview chosen by the uploader of a video or audio file (Mastodon's `thumbnail`): shown
-- instead of the preview made from the file, its blurhash replacing the file's. A separate
-- key, so that replacing it never overwrites an object caches may hold forever.
--
-- While `state` is 'processing', `file_key` holds the upload exactly as received, for the
-- worker to transcode; it becomes the processed file's key when the worker is done.
ALTER TABLE media_attachments ADD COLUMN thumbnail_key text;
