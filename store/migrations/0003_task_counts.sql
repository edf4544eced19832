-- Exact total_size without counting rows (decisions P20-P23; the index at the end: P25): the
-- number of tasks per namespace, kept by statement-level triggers in the same transaction as
-- the INSERT, DELETE, UPDATE or TRUNCATE that changes it, so a rolled-back write leaves the
-- count as it was.
-- Each namespace's count is spread over 16 slots, chosen by the writing backend's process id:
-- concurrent CreateTask calls in one namespace (on different pooled connections) mostly update
-- different rows instead of queueing on one row lock until each commits. A count is the sum of
-- its namespace's slots; there is nothing to compact (at most 16 rows per namespace).

-- Writers wait while the existing rows are counted, so none is missed or counted twice.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE task_counts (
    namespace text COLLATE "C" NOT NULL,
    slot      smallint NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (namespace, slot)
);

INSERT INTO task_counts (namespace, slot, n)
SELECT namespace, 0, count(*) FROM tasks GROUP BY namespace;

-- Add `sign` times the rows of `changed` (a transition table, grouped by namespace) to the
-- writer's slot. ORDER BY namespace: a statement that touches several namespaces locks their
-- rows in one order, so two such statements cannot deadlock.
CREATE FUNCTION task_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        INSERT INTO task_counts AS c (namespace, slot, n)
        SELECT namespace, pg_backend_pid() % 16, count(*) FROM new_rows
        GROUP BY namespace ORDER BY namespace
        ON CONFLICT (namespace, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
        INSERT INTO task_counts AS c (namespace, slot, n)
        SELECT namespace, pg_backend_pid() % 16, -count(*) FROM old_rows
        GROUP BY namespace ORDER BY namespace
        ON CONFLICT (namespace, slot) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION task_counts_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_counts;
    RETURN NULL;
END;
$$;

CREATE TRIGGER task_counts_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add();
CREATE TRIGGER task_counts_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add();
CREATE TRIGGER task_counts_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_add();
CREATE TRIGGER task_counts_truncate AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_counts_truncate();

-- A namespace's tasks in the default order (created_at, id): a namespace-only list, or a page
-- token's next page of one, reads its page from here instead of walking the whole table's
-- created_at index past the other namespaces' tasks (decision P25). Writers wait while it is
-- built, under the lock taken above.
CREATE INDEX tasks_namespace_created_at_id_idx ON tasks (namespace, created_at, id);
