from onestack.common.db import run_migrations
from onestack.volume.models import Base

run_migrations(Base.metadata)
