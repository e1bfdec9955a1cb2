from onestack.common.db import run_migrations
from onestack.orchestration.models import Base

run_migrations(Base.metadata)
