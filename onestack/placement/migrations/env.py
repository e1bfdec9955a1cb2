from onestack.common.db import run_migrations
from onestack.placement.models import Base

run_migrations(Base.metadata)
