"""Importers: other tools' evaluation configs turned into ddray specs (pure functions over parsed files).

An importer never runs anything: it reads a foreign config, maps each of its fields to a spec
field or protocol knob, and says so field by field — what it mapped, what it fixed (the foreign
tool's known bugs, with the value ddray used) and what it could not map (an InputError naming
the field, exit 2). The spec it writes goes through `ddray validate`/`plan`/`run` like any other.
"""
