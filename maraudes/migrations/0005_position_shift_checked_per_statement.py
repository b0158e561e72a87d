"""Positions reference their shift through statement-level triggers instead of a foreign key
constraint: PostgreSQL checks a foreign key once per inserted row (a lock on the shift row
each time: about 9 ms of a 1,000-fix INSERT's 26 ms), these triggers once per statement.

What they guarantee, at READ COMMITTED (the project's isolation level): an INSERT (or UPDATE)
naming a missing shift fails with foreign_key_violation, and the shifts it names are locked
FOR KEY SHARE until commit, so that a concurrent delete waits and then fails; deleting a shift
that still has positions fails too (Django deletes a shift's positions first, as before), and
so does truncating the shifts without the positions. Where they differ from Django's foreign
keys: the checks run at the end of each statement, not at commit (DEFERRABLE INITIALLY
DEFERRED), so positions must be written after their shift, as every path here does; and under
REPEATABLE READ or SERIALIZABLE they see the transaction's snapshot, where a foreign key
checks against the latest committed rows.
"""

import django.db.models.deletion
from django.db import migrations, models

CREATE = """
CREATE FUNCTION maraudes_position_shift_exists() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  wanted bigint;
  locked bigint;
BEGIN
  SELECT count(DISTINCT shift_id) INTO wanted FROM new_rows;
  PERFORM 1 FROM maraudes_shift s
    WHERE s.id IN (SELECT shift_id FROM new_rows)
    FOR KEY SHARE;
  GET DIAGNOSTICS locked = ROW_COUNT;
  IF locked < wanted THEN
    RAISE EXCEPTION 'a position names a shift that does not exist'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'position_shift_exists',
            TABLE = 'maraudes_position';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER position_shift_exists_insert AFTER INSERT ON maraudes_position
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maraudes_position_shift_exists();
CREATE TRIGGER position_shift_exists_update AFTER UPDATE ON maraudes_position
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maraudes_position_shift_exists();

CREATE FUNCTION maraudes_shift_positions_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM old_rows o
    WHERE NOT EXISTS (SELECT 1 FROM maraudes_shift s WHERE s.id = o.id)
      AND EXISTS (SELECT 1 FROM maraudes_position p WHERE p.shift_id = o.id)
  ) THEN
    RAISE EXCEPTION 'a shift that still has positions cannot go'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'shift_positions_exist',
            TABLE = 'maraudes_shift';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER shift_positions_exist_delete AFTER DELETE ON maraudes_shift
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maraudes_shift_positions_exist();
CREATE TRIGGER shift_positions_exist_update AFTER UPDATE ON maraudes_shift
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maraudes_shift_positions_exist();

-- After a TRUNCATE naming both tables (Django's test flush), no position is left.
CREATE FUNCTION maraudes_shift_truncate_positions_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM maraudes_position) THEN
    RAISE EXCEPTION 'the shifts cannot be emptied while positions remain'
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'shift_positions_exist',
            TABLE = 'maraudes_shift';
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER shift_positions_exist_truncate AFTER TRUNCATE ON maraudes_shift
  FOR EACH STATEMENT EXECUTE FUNCTION maraudes_shift_truncate_positions_exist();
"""

DROP = """
DROP TRIGGER shift_positions_exist_truncate ON maraudes_shift;
DROP FUNCTION maraudes_shift_truncate_positions_exist();
DROP TRIGGER shift_positions_exist_update ON maraudes_shift;
DROP TRIGGER shift_positions_exist_delete ON maraudes_shift;
DROP FUNCTION maraudes_shift_positions_exist();
DROP TRIGGER position_shift_exists_update ON maraudes_position;
DROP TRIGGER position_shift_exists_insert ON maraudes_position;
DROP FUNCTION maraudes_position_shift_exists();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("maraudes", "0004_coverage_backlog"),
    ]

    operations = [
        migrations.AlterField(
            model_name="position",
            name="shift",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="positions",
                to="maraudes.shift",
                verbose_name="maraude",
            ),
        ),
        migrations.RunSQL(CREATE, DROP),
    ]
