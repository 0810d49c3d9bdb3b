-- The id of a remote `Follow`, kept with the follow (request) it made: the `Accept` or
-- `Reject` sent later (when a locked account decides) must name it, and an `Undo` of it
-- finds the row by it.
ALTER TABLE follows ADD COLUMN uri text CHECK (length(uri) <= 2048);
ALTER TABLE follow_requests ADD COLUMN uri text CHECK (length(uri) <= 2048);
