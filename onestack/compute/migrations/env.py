from onestack.common.db import run_migrations
from onestack.compute.models import Base

run_migrations(Base.metadata)
