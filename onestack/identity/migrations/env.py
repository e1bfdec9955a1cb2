from onestack.common.db import run_migrations
from onestack.identity.models import Base

run_migrations(Base.metadata)
