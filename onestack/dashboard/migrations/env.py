from onestack.common.db import run_migrations
from onestack.dashboard.models import Base

run_migrations(Base.metadata)
