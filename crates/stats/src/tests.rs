mod fixture;
mod summary;
