-- The tasks table (docs/decisions.md K4) and the indexes KFP lacks (decision D15).
-- Text columns are COLLATE "C": comparisons and ORDER BY in byte order, so ordering by id
-- matches KFP's (the largest UUID string wins ties in descending order).
-- No foreign key on run_id: there is no runs table (decision D13).

CREATE TABLE tasks (
    id                text COLLATE "C" PRIMARY KEY,
    namespace         text COLLATE "C" NOT NULL CHECK (char_length(namespace) <= 255),
    pipeline_name     text COLLATE "C" NOT NULL CHECK (char_length(pipeline_name) <= 255),
    run_id            text COLLATE "C" NOT NULL CHECK (char_length(run_id) <= 255),
    mlmd_execution_id text COLLATE "C" NOT NULL CHECK (char_length(mlmd_execution_id) <= 255),
    created_at        bigint NOT NULL,
    finished_at       bigint NOT NULL DEFAULT 0,
    fingerprint       text COLLATE "C" NOT NULL CHECK (char_length(fingerprint) <= 255)
);

-- The KFP v2 driver's cache lookup: fingerprint, pipeline name and namespace equal,
-- newest first, largest id among tasks created in the same second (decisions K8, K21).
CREATE INDEX tasks_cache_lookup_idx
    ON tasks (fingerprint, pipeline_name, namespace, created_at DESC, id DESC);

-- Keyset paging by every sortable column: ORDER BY col, id and (col, id) >= ($1, $2).
-- Sorting by id uses the primary key.
CREATE INDEX tasks_namespace_id_idx ON tasks (namespace, id);
CREATE INDEX tasks_pipeline_name_id_idx ON tasks (pipeline_name, id);
CREATE INDEX tasks_run_id_id_idx ON tasks (run_id, id);
CREATE INDEX tasks_mlmd_execution_id_id_idx ON tasks (mlmd_execution_id, id);
CREATE INDEX tasks_created_at_id_idx ON tasks (created_at, id);
CREATE INDEX tasks_finished_at_id_idx ON tasks (finished_at, id);
CREATE INDEX tasks_fingerprint_id_idx ON tasks (fingerprint, id);

-- Secrets shared by every replica, e.g. the key that signs page tokens (decisions D5, S3).
CREATE TABLE taskgate_secrets (
    name  text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);
