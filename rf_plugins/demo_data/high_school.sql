-- high_school: teachers, students, courses, enrollments and after-school clubs
PRAGMA foreign_keys = ON;

CREATE TABLE teacher (
    teacher_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    hire_date TEXT,
    salary REAL,
    email TEXT
);

CREATE TABLE student (
    student_id INTEGER PRIMARY KEY,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    grade_level INTEGER NOT NULL,
    birth_date TEXT,
    gpa REAL,
    advisor_id INTEGER,
    FOREIGN KEY (advisor_id) REFERENCES teacher(teacher_id)
);

CREATE TABLE course (
    course_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    teacher_id INTEGER NOT NULL,
    credits INTEGER,
    room TEXT,
    max_enrollment INTEGER,
    FOREIGN KEY (teacher_id) REFERENCES teacher(teacher_id)
);

CREATE TABLE enrollment (
    student_id INTEGER NOT NULL,
    course_id INTEGER NOT NULL,
    term TEXT NOT NULL,
    final_score REAL,
    PRIMARY KEY (student_id, course_id, term),
    FOREIGN KEY (student_id) REFERENCES student(student_id),
    FOREIGN KEY (course_id) REFERENCES course(course_id)
);

CREATE TABLE club (
    club_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    founded_year INTEGER,
    sponsor_teacher_id INTEGER,
    meeting_day TEXT,
    FOREIGN KEY (sponsor_teacher_id) REFERENCES teacher(teacher_id)
);

CREATE TABLE club_membership (
    student_id INTEGER NOT NULL,
    club_id INTEGER NOT NULL,
    role TEXT,
    joined_date TEXT,
    PRIMARY KEY (student_id, club_id),
    FOREIGN KEY (student_id) REFERENCES student(student_id),
    FOREIGN KEY (club_id) REFERENCES club(club_id)
);

INSERT INTO teacher VALUES (1, 'Helen Ortiz', 'Mathematics', '2006-08-21', 68500.0, 'h.ortiz@ridgeview.edu');
INSERT INTO teacher VALUES (2, 'Marcus Bell', 'Physics', '2011-08-15', 61200.0, 'm.bell@ridgeview.edu');
INSERT INTO teacher VALUES (3, 'Sofia Kowalski', 'English', '2003-09-02', 71300.0, 's.kowalski@ridgeview.edu');
INSERT INTO teacher VALUES (4, 'Dennis Mwangi', 'History', '2015-08-24', 56800.0, NULL);
INSERT INTO teacher VALUES (5, 'Laura Fitzgerald', 'Chemistry', '2009-08-17', 64750.0, 'l.fitzgerald@ridgeview.edu');
INSERT INTO teacher VALUES (6, 'Rahul Mehta', 'Computer Science', '2018-08-20', 59900.0, 'r.mehta@ridgeview.edu');
INSERT INTO teacher VALUES (7, 'Claire Dubois', 'French', '2012-08-27', 58300.0, 'c.dubois@ridgeview.edu');
INSERT INTO teacher VALUES (8, 'Gregory Hunt', 'Physical Education', '2000-08-28', 66100.0, NULL);
INSERT INTO teacher VALUES (9, 'Nadia Rahman', 'Biology', '2020-08-17', 54200.0, 'n.rahman@ridgeview.edu');
INSERT INTO teacher VALUES (10, 'Thomas Greer', 'Mathematics', '1998-08-31', 74900.0, 't.greer@ridgeview.edu');
INSERT INTO teacher VALUES (11, 'Yuki Sato', 'Art', '2016-08-22', 55400.0, 'y.sato@ridgeview.edu');
INSERT INTO teacher VALUES (12, 'Patricia Lowe', 'Music', '2022-08-15', 51000.0, NULL);

INSERT INTO student VALUES (1, 'Ava', 'Thompson', 9, '2009-04-12', 3.45, 1);
INSERT INTO student VALUES (2, 'Ethan', 'Morales', 9, '2009-07-30', 2.88, 1);
INSERT INTO student VALUES (3, 'Chloe', 'Nguyen', 10, '2008-02-14', 3.92, 3);
INSERT INTO student VALUES (4, 'Lucas', 'Schmidt', 10, '2008-11-03', 3.10, 2);
INSERT INTO student VALUES (5, 'Mia', 'Johansson', 11, '2007-05-21', 3.67, 3);
INSERT INTO student VALUES (6, 'Noah', 'Patel', 11, '2007-09-09', 3.25, 6);
INSERT INTO student VALUES (7, 'Zoe', 'Anderson', 12, '2006-01-17', 3.81, 10);
INSERT INTO student VALUES (8, 'Liam', 'O''Brien', 12, '2006-06-25', 2.95, 4);
INSERT INTO student VALUES (9, 'Isla', 'Fernandez', 9, '2009-10-02', 3.58, 5);
INSERT INTO student VALUES (10, 'Owen', 'Kaplan', 10, '2008-03-28', 2.71, 2);
INSERT INTO student VALUES (11, 'Amelia', 'Rossi', 11, '2007-12-11', 3.99, 10);
INSERT INTO student VALUES (12, 'Jack', 'Wilson', 12, '2006-08-19', 3.05, 8);
INSERT INTO student VALUES (13, 'Harper', 'Lee', 9, '2009-01-06', 3.33, 1);
INSERT INTO student VALUES (14, 'Mason', 'Okeke', 10, '2008-07-14', 3.48, 6);
INSERT INTO student VALUES (15, 'Ella', 'Bianchi', 11, '2007-03-03', 2.64, 4);
INSERT INTO student VALUES (16, 'Leo', 'Svensson', 12, '2006-11-29', 3.72, 5);
INSERT INTO student VALUES (17, 'Grace', 'Mitchell', 9, '2009-08-08', NULL, NULL);
INSERT INTO student VALUES (18, 'Henry', 'Dubois', 10, '2008-05-16', 3.15, 7);
INSERT INTO student VALUES (19, 'Lily', 'Park', 11, '2007-02-22', 3.86, 1);
INSERT INTO student VALUES (20, 'Samuel', 'Reyes', 12, '2006-04-04', 2.79, 8);
INSERT INTO student VALUES (21, 'Nora', 'Fischer', 10, '2008-09-30', 3.54, 3);
INSERT INTO student VALUES (22, 'Caleb', 'Grant', 11, '2007-07-07', 3.02, 2);
INSERT INTO student VALUES (23, 'Ruby', 'Castillo', 12, '2006-12-01', 3.61, 11);
INSERT INTO student VALUES (24, 'Adam', 'Novak', 9, '2009-05-19', 2.97, 6);

INSERT INTO course VALUES (1, 'Algebra II', 1, 4, 'B201', 28);
INSERT INTO course VALUES (2, 'Calculus AB', 10, 5, 'B204', 24);
INSERT INTO course VALUES (3, 'Physics I', 2, 4, 'S110', 26);
INSERT INTO course VALUES (4, 'American Literature', 3, 4, 'A105', 30);
INSERT INTO course VALUES (5, 'World History', 4, 3, 'A112', 32);
INSERT INTO course VALUES (6, 'General Chemistry', 5, 4, 'S114', 26);
INSERT INTO course VALUES (7, 'Intro to Programming', 6, 3, 'C012', 22);
INSERT INTO course VALUES (8, 'French I', 7, 3, 'A118', 25);
INSERT INTO course VALUES (9, 'Fitness and Health', 8, 2, NULL, 40);
INSERT INTO course VALUES (10, 'Biology', 9, 4, 'S120', 28);
INSERT INTO course VALUES (11, 'Statistics', 10, 3, 'B204', 24);
INSERT INTO course VALUES (12, 'Studio Art', 11, 2, 'D001', 18);
INSERT INTO course VALUES (13, 'Creative Writing', 3, 3, 'A107', 20);
INSERT INTO course VALUES (14, 'Data Structures', 6, 4, 'C012', 20);

INSERT INTO enrollment VALUES (1, 1, '2023-Fall', 88.5);
INSERT INTO enrollment VALUES (1, 4, '2023-Fall', 91.0);
INSERT INTO enrollment VALUES (1, 10, '2024-Spring', 84.0);
INSERT INTO enrollment VALUES (2, 1, '2023-Fall', 72.5);
INSERT INTO enrollment VALUES (2, 9, '2023-Fall', 95.0);
INSERT INTO enrollment VALUES (2, 5, '2024-Spring', 68.0);
INSERT INTO enrollment VALUES (3, 2, '2023-Fall', 97.5);
INSERT INTO enrollment VALUES (3, 3, '2023-Fall', 94.0);
INSERT INTO enrollment VALUES (3, 13, '2024-Spring', 96.0);
INSERT INTO enrollment VALUES (4, 3, '2023-Fall', 81.0);
INSERT INTO enrollment VALUES (4, 7, '2024-Spring', 86.5);
INSERT INTO enrollment VALUES (5, 4, '2023-Fall', 89.0);
INSERT INTO enrollment VALUES (5, 6, '2023-Fall', 90.5);
INSERT INTO enrollment VALUES (5, 8, '2024-Spring', 92.0);
INSERT INTO enrollment VALUES (6, 7, '2023-Fall', 93.5);
INSERT INTO enrollment VALUES (6, 14, '2024-Spring', 87.0);
INSERT INTO enrollment VALUES (6, 11, '2024-Spring', 79.5);
INSERT INTO enrollment VALUES (7, 2, '2023-Fall', 92.5);
INSERT INTO enrollment VALUES (7, 11, '2024-Spring', 95.5);
INSERT INTO enrollment VALUES (7, 12, '2024-Spring', 88.0);
INSERT INTO enrollment VALUES (8, 5, '2023-Fall', 74.0);
INSERT INTO enrollment VALUES (8, 9, '2024-Spring', 90.0);
INSERT INTO enrollment VALUES (9, 10, '2023-Fall', 89.5);
INSERT INTO enrollment VALUES (9, 6, '2024-Spring', 85.0);
INSERT INTO enrollment VALUES (10, 1, '2023-Fall', 65.5);
INSERT INTO enrollment VALUES (10, 5, '2024-Spring', 71.0);
INSERT INTO enrollment VALUES (11, 2, '2023-Fall', 99.0);
INSERT INTO enrollment VALUES (11, 3, '2024-Spring', 96.5);
INSERT INTO enrollment VALUES (11, 14, '2024-Spring', 98.0);
INSERT INTO enrollment VALUES (12, 9, '2023-Fall', 93.0);
INSERT INTO enrollment VALUES (12, 5, '2023-Fall', 77.5);
INSERT INTO enrollment VALUES (13, 10, '2023-Fall', 82.0);
INSERT INTO enrollment VALUES (13, 12, '2024-Spring', 91.5);
INSERT INTO enrollment VALUES (14, 7, '2023-Fall', 88.0);
INSERT INTO enrollment VALUES (14, 1, '2024-Spring', 83.5);
INSERT INTO enrollment VALUES (15, 4, '2023-Fall', 70.0);
INSERT INTO enrollment VALUES (15, 8, '2024-Spring', 76.5);
INSERT INTO enrollment VALUES (16, 3, '2023-Fall', 90.0);
INSERT INTO enrollment VALUES (16, 6, '2024-Spring', 87.5);
INSERT INTO enrollment VALUES (17, 9, '2024-Spring', NULL);
INSERT INTO enrollment VALUES (18, 8, '2023-Fall', 94.5);
INSERT INTO enrollment VALUES (18, 4, '2024-Spring', 80.0);
INSERT INTO enrollment VALUES (19, 2, '2023-Fall', 93.0);
INSERT INTO enrollment VALUES (19, 6, '2023-Fall', 91.0);
INSERT INTO enrollment VALUES (19, 13, '2024-Spring', 89.0);
INSERT INTO enrollment VALUES (20, 5, '2023-Fall', 69.0);
INSERT INTO enrollment VALUES (20, 9, '2024-Spring', 88.5);
INSERT INTO enrollment VALUES (21, 4, '2023-Fall', 86.0);
INSERT INTO enrollment VALUES (21, 1, '2024-Spring', 90.5);
INSERT INTO enrollment VALUES (22, 3, '2023-Fall', 78.0);
INSERT INTO enrollment VALUES (22, 11, '2024-Spring', 81.5);
INSERT INTO enrollment VALUES (23, 12, '2023-Fall', 97.0);
INSERT INTO enrollment VALUES (23, 13, '2024-Spring', 92.5);
INSERT INTO enrollment VALUES (24, 7, '2024-Spring', NULL);

INSERT INTO club VALUES (1, 'Robotics Club', 2014, 6, 'Tuesday');
INSERT INTO club VALUES (2, 'Debate Team', 2005, 3, 'Wednesday');
INSERT INTO club VALUES (3, 'Chess Club', 2010, 1, 'Thursday');
INSERT INTO club VALUES (4, 'Drama Society', 2001, 3, 'Monday');
INSERT INTO club VALUES (5, 'Environmental Club', 2019, 9, 'Friday');
INSERT INTO club VALUES (6, 'Jazz Band', 2023, 12, 'Tuesday');
INSERT INTO club VALUES (7, 'French Conversation Circle', 2013, 7, 'Thursday');
INSERT INTO club VALUES (8, 'Photography Club', 2017, NULL, 'Friday');

INSERT INTO club_membership VALUES (3, 2, 'Captain', '2022-09-12');
INSERT INTO club_membership VALUES (3, 3, 'Member', '2023-01-10');
INSERT INTO club_membership VALUES (4, 1, 'Member', '2022-09-20');
INSERT INTO club_membership VALUES (6, 1, 'President', '2021-09-14');
INSERT INTO club_membership VALUES (7, 3, 'President', '2020-09-15');
INSERT INTO club_membership VALUES (7, 2, 'Member', '2021-02-01');
INSERT INTO club_membership VALUES (11, 1, 'Member', '2021-09-14');
INSERT INTO club_membership VALUES (11, 3, 'Member', '2022-01-18');
INSERT INTO club_membership VALUES (14, 1, 'Treasurer', '2022-09-20');
INSERT INTO club_membership VALUES (5, 4, 'President', '2021-09-13');
INSERT INTO club_membership VALUES (15, 4, 'Member', '2022-10-03');
INSERT INTO club_membership VALUES (23, 4, 'Member', '2020-09-21');
INSERT INTO club_membership VALUES (23, 8, 'President', '2021-09-17');
INSERT INTO club_membership VALUES (13, 5, 'Member', '2023-09-15');
INSERT INTO club_membership VALUES (9, 5, 'Secretary', '2023-09-15');
INSERT INTO club_membership VALUES (16, 5, 'President', '2022-09-16');
INSERT INTO club_membership VALUES (12, 6, 'Member', '2023-09-19');
INSERT INTO club_membership VALUES (19, 6, 'Member', '2023-09-19');
INSERT INTO club_membership VALUES (18, 7, 'President', '2022-09-15');
INSERT INTO club_membership VALUES (5, 7, 'Member', '2022-09-15');
INSERT INTO club_membership VALUES (21, 2, 'Member', '2022-09-12');
INSERT INTO club_membership VALUES (19, 2, 'Member', '2021-09-13');
INSERT INTO club_membership VALUES (1, 8, 'Member', '2023-09-22');
INSERT INTO club_membership VALUES (8, 8, 'Member', '2022-02-11');
INSERT INTO club_membership VALUES (22, 3, 'Member', '2022-09-15');
INSERT INTO club_membership VALUES (10, 5, 'Member', '2023-10-06');
