-- 0001's cache index held fingerprint, pipeline_name and namespace: three 255-character
-- values of 4-byte UTF-8 exceed btree's 2704-byte row limit, and the INSERT failed.
-- The fingerprint alone is selective (a hash of the task's cache key); the other two
-- equalities are checked on the few rows it finds, still newest first, largest id first.
DROP INDEX IF EXISTS tasks_cache_lookup_idx;
CREATE INDEX tasks_cache_lookup_idx ON tasks (fingerprint, created_at DESC, id DESC);
