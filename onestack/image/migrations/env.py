from onestack.common.db import run_migrations
from onestack.image.models import Base

run_migrations(Base.metadata)
