from onestack.common.db import run_migrations
from onestack.network.models import Base

run_migrations(Base.metadata)
