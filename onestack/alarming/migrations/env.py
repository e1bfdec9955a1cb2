from onestack.alarming.models import Base
from onestack.common.db import run_migrations

run_migrations(Base.metadata)
