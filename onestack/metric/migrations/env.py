from onestack.common.db import run_migrations
from onestack.metric.models import Base

run_migrations(Base.metadata)
